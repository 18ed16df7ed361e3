// Package evidence writes and checks the evidence archive of an incident:
// one signed file that holds what happened and proves it, for a regulator,
// an insurer or a court, checked offline with the audit trail's verifier
// key alone.
//
// # Format
//
// An archive is a POSIX tar file (archive/tar) of these members, in this
// order, each a regular file:
//
//	manifest.note   the manifest (JSON) as a signed note (sumdb/note)
//	incident.json   the incident: ids, codes and times (Incident)
//	timeline.json   its timeline: times, actors, kinds, request ids (Event)
//	alerts.json     the linked alerts with their explanations (detect.AlertView)
//	actions.json    the containment actions taken or proposed (incident.Action)
//	entries.ndjson  the audit entries in scope, one auditlog.ExportLine a line,
//	                each with its inclusion proof against the checkpoint
//
// The manifest names the format, the incident, when the archive was made,
// the signed audit checkpoint verbatim, the counts, and the size and
// SHA-256 of every other member. It is signed by the same note key that
// signs the audit checkpoints, so one verifier key checks both.
//
// # What is in scope
//
// The entries behind the incident's timeline (by request id), and the
// entries within the scope's window made by its users, clients or sources
// or touching its patients ([incident.Select] with Patients set): the one
// selection the breach report reads too. They are picked sparsely, so each
// carries its own proof (tlog.ProveRecord) against the checkpoint's tree.
//
// # No PHI, no free text
//
// Incidents hold ids, codes and times; their titles and notes, sealed in
// the vault, are left out, and so are the timeline's details and a
// rejection's reason, which a person typed (the audit entry of each change
// holds its detail). Audit entries hold ids only.
package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Format names the archive format in its manifest.
const Format = "phivault-incident-evidence/1"

// FileExt is the extension of an archive file.
const FileExt = ".phivault-evidence"

// Member names, in the order an archive holds them.
const (
	MemberManifest = "manifest.note"
	MemberIncident = "incident.json"
	MemberTimeline = "timeline.json"
	MemberAlerts   = "alerts.json"
	MemberActions  = "actions.json"
	MemberEntries  = "entries.ndjson"
)

// members are the members the manifest lists, in order.
var members = []string{MemberIncident, MemberTimeline, MemberAlerts, MemberActions, MemberEntries}

// Manifest is the signed table of contents of an archive.
type Manifest struct {
	Format     string    `json:"format"` // Format
	Incident   string    `json:"incident"`
	Created    time.Time `json:"created"`
	Checkpoint string    `json:"checkpoint"` // the signed audit checkpoint note, verbatim
	Counts     Counts    `json:"counts"`
	Members    []Member  `json:"members"` // every member but the manifest, in order
}

// Counts are how many items each member holds.
type Counts struct {
	Timeline int   `json:"timeline"`
	Alerts   int   `json:"alerts"`
	Actions  int   `json:"actions"`
	Entries  int64 `json:"entries"`
}

// Member is one member of an archive as the manifest lists it.
type Member struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// Incident is an incident as an archive holds it: its title is left out.
type Incident struct {
	ID           string         `json:"id"`
	Severity     string         `json:"severity"`
	Phase        string         `json:"phase"`
	Owner        string         `json:"owner,omitempty"`
	Source       string         `json:"source"`
	Alerts       []string       `json:"alerts,omitempty"`
	Scope        incident.Scope `json:"scope"`
	Discovered   time.Time      `json:"discovered"`
	Opened       time.Time      `json:"opened"`
	Updated      time.Time      `json:"updated"`
	Acknowledged time.Time      `json:"acknowledged,omitzero"`
	Contained    time.Time      `json:"contained,omitzero"`
	Closed       time.Time      `json:"closed,omitzero"`
	Version      int64          `json:"version"`
}

// Event is a timeline event as an archive holds it: its detail is in the
// audit entry with request id Request; its note, if any, is left out.
type Event struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Kind    string    `json:"kind"`
	Request string    `json:"request"`
	Note    bool      `json:"note,omitempty"` // a sealed note exists, not included
}

// Source is what an archive is made of.
type Source struct {
	Incident *incident.Incident
	Timeline []*incident.Event // oldest first
	Alerts   []*detect.Alert
}

// Options configure Write.
type Options struct {
	// Storage is the audit trail the entries and proofs are read from.
	Storage auditlog.Storage
	// Checkpoint is a signed checkpoint of Storage covering every entry
	// of the timeline.
	Checkpoint []byte
	// Signer signs the manifest: the audit checkpoint signer. Verifier is
	// its verifier key, which must have signed Checkpoint.
	Signer   note.Signer
	Verifier note.Verifier
	// Created is the archive's time; zero means now.
	Created time.Time
}

// Summary tells what an archive holds, as Write made it or Verify checked it.
type Summary struct {
	Incident   string
	Created    time.Time
	Timeline   int
	Alerts     int
	Actions    int
	Entries    int64 // audit entries, each with its inclusion proof verified (by Verify)
	Checkpoint auditlog.Checkpoint
}

// maxManifest bounds the manifest member.
const maxManifest = 1 << 20

// Write writes the evidence archive of src to w: the timeline's audit
// entries and those of the incident's scope, each with its proof against
// opts.Checkpoint, and the signed manifest. It fails, writing nothing, if
// the checkpoint is not signed by opts.Verifier, is not a checkpoint of
// opts.Storage, or does not cover every entry of the timeline.
func Write(ctx context.Context, w io.Writer, src Source, opts Options) (Summary, error) {
	in := src.Incident
	var sum Summary
	c, err := auditlog.OpenCheckpoint(opts.Checkpoint, opts.Verifier, opts.Verifier.Name())
	if err != nil {
		return sum, fmt.Errorf("evidence: %w", err)
	}
	s := opts.Storage
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadAuditHashes(ctx, idx) })
	if root, err := tlog.TreeHash(c.N, hashes); err != nil {
		return sum, fmt.Errorf("evidence: tree hash: %w", err)
	} else if root != c.Hash {
		return sum, fmt.Errorf("evidence: the trail's tree of %d entries does not match the checkpoint; run phivault audit verify", c.N)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Round(0)

	// The entries in scope, with their proofs.
	sel := incident.Selection{Scope: in.Scope, Patients: true}
	for _, ev := range src.Timeline {
		sel.Requests = append(sel.Requests, ev.Request)
	}
	trail := &storageTrail{s: s}
	selected, readErr := incident.Select(ctx, trail, c.N, sel)
	var entries bytes.Buffer
	enc := json.NewEncoder(&entries)
	seen := map[string]bool{}
	for i, e := range selected {
		data, err := trail.raw(ctx, i)
		if err != nil {
			return sum, err
		}
		p, err := tlog.ProveRecord(c.N, i, hashes)
		if err != nil {
			return sum, fmt.Errorf("evidence: prove entry %d: %w", i, err)
		}
		line := auditlog.ExportLine{Index: i, LeafHash: tlog.RecordHash(data), Entry: data, TreeSize: c.N, Proof: p}
		if err := enc.Encode(line); err != nil {
			return sum, err
		}
		seen[e.RequestID] = true
		sum.Entries++
	}
	if err := readErr(); err != nil {
		return sum, fmt.Errorf("evidence: %w", err)
	}
	for _, ev := range src.Timeline {
		if !seen[ev.Request] {
			return sum, fmt.Errorf("evidence: the checkpoint of %d entries does not cover the incident's change at %s; sign a newer one", c.N, ev.At.UTC().Format(time.RFC3339))
		}
	}

	// The other members.
	timeline := make([]Event, 0, len(src.Timeline))
	for _, ev := range src.Timeline {
		timeline = append(timeline, Event{At: ev.At.UTC(), Actor: ev.Actor, Kind: ev.Kind, Request: ev.Request, Note: len(ev.Note) > 0})
	}
	alerts := make([]detect.AlertView, 0, len(src.Alerts))
	for _, a := range src.Alerts {
		alerts = append(alerts, alertView(a))
	}
	actions := make([]incident.Action, 0, len(in.Actions))
	for _, a := range in.Actions {
		if a.State == incident.ActionRejected {
			a.Reason = "" // a person's words
		}
		actions = append(actions, a)
	}
	bodies := map[string][]byte{MemberEntries: entries.Bytes()}
	for name, v := range map[string]any{MemberIncident: incidentOf(in), MemberTimeline: timeline, MemberAlerts: alerts, MemberActions: actions} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return sum, fmt.Errorf("evidence: %s: %w", name, err)
		}
		bodies[name] = append(b, '\n')
	}

	m := Manifest{
		Format: Format, Incident: in.ID, Created: created, Checkpoint: string(opts.Checkpoint),
		Counts: Counts{Timeline: len(timeline), Alerts: len(alerts), Actions: len(actions), Entries: sum.Entries},
	}
	for _, name := range members {
		h := sha256.Sum256(bodies[name])
		m.Members = append(m.Members, Member{Name: name, Size: int64(len(bodies[name])), SHA256: hex.EncodeToString(h[:])})
	}
	text, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return sum, err
	}
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, opts.Signer)
	if err != nil {
		return sum, fmt.Errorf("evidence: sign the manifest: %w", err)
	}

	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o600, ModTime: created, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put(MemberManifest, signed); err != nil {
		return sum, fmt.Errorf("evidence: write: %w", err)
	}
	for _, name := range members {
		if err := put(name, bodies[name]); err != nil {
			return sum, fmt.Errorf("evidence: write: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return sum, fmt.Errorf("evidence: write: %w", err)
	}
	return Summary{Incident: in.ID, Created: created, Timeline: len(timeline), Alerts: len(alerts), Actions: len(actions),
		Entries: sum.Entries, Checkpoint: c}, nil
}

func incidentOf(in *incident.Incident) Incident {
	return Incident{
		ID: in.ID, Severity: in.Severity.String(), Phase: in.Phase, Owner: in.Owner, Source: in.Source, Alerts: in.Alerts,
		Scope: in.Scope, Discovered: in.Discovered.UTC(), Opened: in.Opened.UTC(), Updated: in.Updated.UTC(),
		Acknowledged: in.Acknowledged.UTC(), Contained: in.Contained.UTC(), Closed: in.Closed.UTC(), Version: in.Version,
	}
}

// alertView is a's wire form, as GET /security/alerts/{id} shows it
// (triages aside: their notes are a person's words).
func alertView(a *detect.Alert) detect.AlertView {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return detect.AlertView{
		ID: a.ID, Rule: a.Rule, Severity: a.Severity.String(), Score: a.Score,
		User: a.User, Patients: nonNil(a.Patients),
		First: a.First.UTC(), Last: a.Last.UTC(), Detected: a.Detected.UTC(),
		Explanation: a.Why, Factors: nonNil(a.Factors), Evidence: nonNil(a.Evidence),
		Events: a.Events, State: a.State, Suppressed: a.Suppressed,
	}
}

// storageTrail reads an auditlog.Storage as a detect.Trail for
// incident.Select, keeping the raw bytes of the chunk last read: Select
// yields a chunk's entries before it reads the next, so the bytes of a
// selected entry are at hand.
type storageTrail struct {
	s     auditlog.Storage
	start int64
	data  [][]byte
}

func (t *storageTrail) Size(ctx context.Context) (int64, error) { return t.s.AuditSize(ctx) }

func (t *storageTrail) Entries(ctx context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	data, err := t.s.ReadAuditEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != end-start {
		return nil, fmt.Errorf("read audit entries [%d, %d): got %d", start, end, len(data))
	}
	t.start, t.data = start, data
	out := make([]*phivault.AuditEntry, len(data))
	for i, d := range data {
		if d == nil {
			return nil, &auditlog.VerifyError{Index: start + int64(i), Err: fmt.Errorf("missing")}
		}
		if out[i], err = auditlog.Decode(d); err != nil {
			return nil, &auditlog.VerifyError{Index: start + int64(i), Err: err}
		}
	}
	return out, nil
}

// raw returns the stored bytes of entry i.
func (t *storageTrail) raw(ctx context.Context, i int64) ([]byte, error) {
	if i >= t.start && i < t.start+int64(len(t.data)) {
		return t.data[i-t.start], nil
	}
	data, err := t.s.ReadAuditEntries(ctx, i, i+1)
	if err != nil || len(data) != 1 || data[0] == nil {
		return nil, fmt.Errorf("evidence: read audit entry %d: %v", i, err)
	}
	return data[0], nil
}
