package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// DefaultBatchLines is the most lines Export puts in one Batch: well
// under the server's DefaultIngestMaxLines and DefaultIngestMaxBytes.
const DefaultBatchLines = 5000

// LabelHoneytoken is the patient roster label that declares a decoy
// through the ingestion API (docs/detection.md, "Running the simulator
// against a server").
const LabelHoneytoken = detect.LabelDecoy

// Batch is one ingestion request: lines of one kind, in the NDJSON that
// POST /security/ingest/{Kind} reads.
//
// Body holds the simulator's synthetic names, addresses and phones in
// plaintext, as a roster sent by another system would: they are made
// up, yet never log it.
type Batch struct {
	Kind string // detect.IngestAccess, IngestStaff, IngestPatients or IngestRelationships
	Body []byte
	// Lines holds, for each line of Body, the index in Workload.Records
	// of the record it carries. An event of more than
	// detect.MaxIngestPatients patients is several lines, so it can
	// appear more than once.
	Lines []int
}

// Export is a workload in the ingestion formats.
type Export struct {
	Batches []Batch
	// Skipped counts the access events the access log format cannot
	// carry, by action: phivault's own control actions (account and
	// policy changes, key operations, seal and unseal) arrive only
	// through its audit trail.
	Skipped map[string]int `json:"skipped"`
}

// ingestActions are the actions the access log format names as Event
// names them.
var ingestActions = []string{
	phivault.ActionRead, phivault.ActionSearch, phivault.ActionCreate, phivault.ActionUpdate,
	phivault.ActionDelete, phivault.ActionExport, detect.ActionPrint, phivault.ActionLogin, detect.ActionLoginFailed,
	phivault.ActionBreakGlass,
}

// notIngestible are the rules that watch only the control actions of
// phivault's own audit trail (role grants, policy reloads, key
// operations, seal and unseal), which no access log carries: in a
// workload as ingested their targets are not measurable, and Score
// leaves them out (Report.NotMeasurable) instead of counting them as
// misses.
var notIngestible = []string{RuleRoleGrant, RulePolicy, RuleKeyOperation, RuleSealUnseal}

// Export writes w in the ingestion formats (docs/detection.md,
// "Ingestion"), in the order the records must be sent: a batch holds
// consecutive records of one kind, at most maxLines lines
// (DefaultBatchLines if maxLines <= 0), so rosters and relationships
// reach the server before the events that follow them. Decoys are
// patients with the LabelHoneytoken label. Events carry their purpose of
// use and search parameter names. Fields the formats lack are dropped:
// decisions, resource ids, and the link of a user to its Practitioner
// (relationships name the user instead).
func (w *Workload) Export(maxLines int) (*Export, error) {
	if maxLines <= 0 {
		maxLines = DefaultBatchLines
	}
	x := &exporter{w: w, max: maxLines, out: &Export{Skipped: map[string]int{}}, decoys: map[string]bool{}}
	for i := range w.Records {
		if r := &w.Records[i]; r.Kind == detect.RecordHoneytoken {
			x.decoys[r.Honeytoken] = true
		}
	}
	for i := range w.Records {
		if err := x.record(i); err != nil {
			return nil, err
		}
	}
	x.flush()
	return x.out, nil
}

type exporter struct {
	w      *Workload
	max    int
	out    *Export
	decoys map[string]bool
	cur    *Batch
	buf    bytes.Buffer
}

func (x *exporter) record(i int) error {
	r := &x.w.Records[i]
	switch r.Kind {
	case detect.RecordAccess:
		return x.access(i, r.Event)
	case detect.RecordStaff:
		return x.line(detect.IngestStaff, i, x.staffLine(r.User))
	case detect.RecordPatient:
		return x.line(detect.IngestPatients, i, x.patientLine(r.Patient))
	case detect.RecordRelationship:
		return x.line(detect.IngestRelationships, i, x.relationshipLine(r.Relationship))
	case detect.RecordHoneytoken:
		return nil // a label of the decoy's roster line
	}
	return fmt.Errorf("simulate: export: unknown record kind %q", r.Kind)
}

// line appends one line of kind for record i.
func (x *exporter) line(kind string, i int, v any) error {
	if x.cur != nil && (x.cur.Kind != kind || len(x.cur.Lines) >= x.max) {
		x.flush()
	}
	if x.cur == nil {
		x.cur = &Batch{Kind: kind}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("simulate: export %s: %w", kind, err)
	}
	x.buf.Write(b)
	x.buf.WriteByte('\n')
	x.cur.Lines = append(x.cur.Lines, i)
	return nil
}

func (x *exporter) flush() {
	if x.cur == nil {
		return
	}
	x.cur.Body = bytes.Clone(x.buf.Bytes())
	x.out.Batches = append(x.out.Batches, *x.cur)
	x.cur = nil
	x.buf.Reset()
}

// local strips the system prefix of a namespaced id.
func (x *exporter) local(id string) string {
	return strings.TrimPrefix(id, x.w.Config.System+":")
}

// AccessLine is a line of POST /security/ingest/access (detect.IngestAccess),
// as the simulator exports it and phivault bench -mode ingest sends it.
type AccessLine struct {
	Time         string   `json:"time"`
	System       string   `json:"system"`
	User         string   `json:"user"`
	Role         string   `json:"role,omitempty"`
	Department   string   `json:"department,omitempty"`
	Patient      string   `json:"patient,omitempty"`
	Patients     []string `json:"patients,omitempty"`
	Action       string   `json:"action"`
	ResourceType string   `json:"resource_type,omitempty"`
	Source       string   `json:"source_address,omitempty"`
	ResultCount  int      `json:"result_count"`
	Outcome      string   `json:"outcome,omitempty"`
	Purpose      string   `json:"purpose,omitempty"`
	SearchParams []string `json:"search_params,omitempty"`
}

func (x *exporter) access(i int, ev *detect.Event) error {
	if !slices.Contains(ingestActions, ev.Action) {
		x.out.Skipped[ev.Action]++
		return nil
	}
	l := AccessLine{
		Time: ev.Time.UTC().Format(time.RFC3339Nano), System: x.w.Config.System, User: x.local(ev.User),
		Department: ev.Department, Action: ev.Action, ResourceType: ev.ResourceType, Source: ev.Source,
		ResultCount: ev.Count, Purpose: ev.Purpose, SearchParams: ev.Params,
	}
	if len(ev.Roles) > 0 {
		l.Role = ev.Roles[0]
	}
	if !ev.OK {
		l.Outcome = ev.Outcome
	}
	if len(ev.Patients) == 1 {
		l.Patient = x.local(ev.Patients[0])
	}
	if len(ev.Patients) <= 1 {
		return x.line(detect.IngestAccess, i, l)
	}
	// One line for all the patients, as the rules see the event in
	// process; over the line's bound, several, the first carrying the
	// result count.
	for chunk := range slices.Chunk(ev.Patients, detect.MaxIngestPatients) {
		l.Patients = l.Patients[:0]
		for _, p := range chunk {
			l.Patients = append(l.Patients, x.local(p))
		}
		if err := x.line(detect.IngestAccess, i, l); err != nil {
			return err
		}
		l.ResultCount = 0
	}
	return nil
}

// rosterLine is a line of the staff or patient roster.
type rosterLine struct {
	System     string   `json:"system"`
	ID         string   `json:"id"`
	Family     string   `json:"family,omitempty"`
	Address    string   `json:"address,omitempty"`
	PostalCode string   `json:"postal_code,omitempty"`
	Phone      string   `json:"phone,omitempty"`
	Department string   `json:"department,omitempty"`
	Role       []string `json:"role,omitempty"`
	Status     string   `json:"status,omitempty"`
	Patient    string   `json:"patient,omitempty"`
	Labels     []string `json:"labels,omitempty"`
	Deceased   bool     `json:"deceased,omitempty"`
	Employee   string   `json:"employee,omitempty"`
}

// person fills l with the plaintext of id.
func (x *exporter) person(l *rosterLine, id string) {
	p := x.w.people[id]
	if p == nil {
		return
	}
	l.Family, l.Phone = p.family, p.phone
	if p.address {
		l.Address, l.PostalCode = p.line, p.postal
	}
}

func (x *exporter) staffLine(u *detect.User) rosterLine {
	l := rosterLine{System: x.w.Config.System, ID: x.local(u.ID), Department: u.Department, Role: u.Roles, Status: u.Status}
	if u.Patient != "" {
		l.Patient = x.local(u.Patient)
	}
	x.person(&l, u.ID)
	return l
}

func (x *exporter) patientLine(p *detect.Patient) rosterLine {
	l := rosterLine{System: x.w.Config.System, ID: x.local(p.ID), Labels: slices.Clone(p.Labels), Deceased: p.Deceased}
	if p.Employee != "" {
		l.Employee = x.local(p.Employee)
	}
	if x.decoys[p.ID] {
		l.Labels = append(l.Labels, LabelHoneytoken)
	}
	x.person(&l, p.ID)
	return l
}

// relationshipLine is a line of POST /security/ingest/relationships.
type relationshipLine struct {
	System  string `json:"system"`
	User    string `json:"user"`
	Patient string `json:"patient"`
	Kind    string `json:"kind"`
	Start   string `json:"start,omitempty"`
	End     string `json:"end,omitempty"`
}

func (x *exporter) relationshipLine(r *detect.Relationship) relationshipLine {
	user := r.User
	if u, ok := x.w.practitioners[user]; ok {
		user = u
	}
	l := relationshipLine{System: x.w.Config.System, User: x.local(user), Patient: x.local(r.Patient), Kind: r.Kind}
	if !r.Start.IsZero() {
		l.Start = r.Start.UTC().Format(time.RFC3339Nano)
	}
	if !r.End.IsZero() {
		l.End = r.End.UTC().Format(time.RFC3339Nano)
	}
	return l
}

// WriteDir writes the batches of x into dir as files named
// "0001-staff.ndjson", "0002-patients.ndjson", …, to be sent in name
// order (phivault detect ingest -kind KIND FILE), and truth as
// "truth.json" (ids only). The files hold synthetic plaintext names:
// they are created 0600, and never over an existing file, as a folder
// holding an earlier, longer run's files would send them too.
func (x *Export) WriteDir(dir string, truth *Truth) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	for i, b := range x.Batches {
		if err := writeNew(filepath.Join(dir, fmt.Sprintf("%04d-%s.ndjson", i+1, b.Kind)), b.Body); err != nil {
			return err
		}
	}
	t, err := json.MarshalIndent(truth, "", "  ")
	if err != nil {
		return fmt.Errorf("simulate: truth: %w", err)
	}
	return writeNew(filepath.Join(dir, "truth.json"), append(t, '\n'))
}

// writeNew creates file name, 0600, with b; it fails if name exists.
func writeNew(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("simulate: %s exists: write the workload into an empty folder", name)
	} else if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("simulate: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return nil
}

// Ingested returns w as a server reading x would hold it: each batch
// parsed by detect.ParseIngest with w's tokenizer (what the server does
// with the vault's key), the records numbered from first[i] for batch i
// (the sequences the server's answers gave; nil: from 1, in order).
// Its Truth is w's, but the targets of the rules that only phivault's own
// control actions feed (role-grant, policy-reload, key-operation,
// seal-unseal) are left out of its scores (Report.NotMeasurable).
// Evaluating it in process measures what the formats lose; comparing it
// with a server's alerts measures the server.
func (w *Workload) Ingested(ctx context.Context, x *Export, first []int64) (*Workload, error) {
	if first != nil && len(first) != len(x.Batches) {
		return nil, fmt.Errorf("simulate: %d sequences for %d batches", len(first), len(x.Batches))
	}
	v := &Workload{Config: w.Config, Truth: w.Truth, Start: w.Start, End: w.End,
		people: w.people, practitioners: w.practitioners, tk: w.tk, unfed: notIngestible}
	next := int64(1)
	for i, b := range x.Batches {
		recs, rep, err := detect.ParseIngest(ctx, w.tk, b.Kind, detect.ContentNDJSON, bytes.NewReader(b.Body), detect.IngestOptions{MaxBytes: -1, MaxLines: -1})
		if err != nil {
			return nil, fmt.Errorf("simulate: parse batch %d (%s): %w", i+1, b.Kind, err)
		}
		if rep.Rejected > 0 {
			return nil, fmt.Errorf("simulate: batch %d (%s): %d lines rejected, the first at line %d (%s: %s)",
				i+1, b.Kind, rep.Rejected, rep.Errors[0].Line, rep.Errors[0].Field, rep.Errors[0].Reason)
		}
		if first != nil {
			next = first[i]
		}
		line := -1
		for _, r := range recs {
			if r.Kind != detect.RecordHoneytoken {
				line++
			}
			r.Seq = next
			if r.Event != nil {
				r.Event.Seq = next
			}
			next++
			v.Records = append(v.Records, r)
			v.times = append(v.times, w.times[b.Lines[line]])
		}
	}
	return v, nil
}
