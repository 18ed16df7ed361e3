package evidence_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/evidence"
	"github.com/phivault/phivault/incident/playbook"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/internal/vaulttest"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The patient's name, which must never be in an archive: it is in the
// incident's title, a note and a rejection's reason.
const name = "Zebediah Quint"

type fixture struct {
	store    *storetest.MemAudit
	log      *auditlog.Log
	signer   note.Signer
	verifier note.Verifier
	svc      *incident.Service
	in       *incident.Incident
	alert    *detect.Alert
	early    []byte // a checkpoint before the incident's last change
	// want are the indexes of the entries in scope.
	want []int64
}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func officer() context.Context {
	ctx := phivault.WithPrincipal(context.Background(), &phivault.Principal{ID: "po-1", Roles: []string{phivault.RolePrivacyOfficer}})
	return phivault.WithRequestInfo(ctx, phivault.RequestInfo{Actor: "po-1", Source: "10.0.0.9"})
}

// newFixture makes a trail with reads in and out of an incident's scope,
// and the incident: opened by a playbook for an alert, an action done,
// another rejected with a reason naming the patient, a title and a note
// naming her.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{store: storetest.NewMemAudit()}
	f.signer, f.verifier = storetest.NewSigner(t)
	f.log = auditlog.New(f.store, f.signer.Name(), f.signer)
	f.log.CheckpointInterval = -1
	if err := f.log.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	read := func(tm time.Time, actor, patient string) {
		e := &phivault.AuditEntry{Time: tm, RequestID: "r-" + actor + "-" + tm.Format("1504"), Actor: actor, Action: phivault.ActionRead,
			TargetType: "Patient", TargetID: patient, Compartments: []string{patient}, Returned: []string{"Patient/" + patient + "/_history/1"}, Outcome: "ok"}
		if err := f.log.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	read(at(-120), "u-nurse", "p-7") // 0: before the window
	read(at(1), "u-nurse", "p-1")    // 1: the nurse, in the window
	read(at(2), "u-other", "p-2")    // 2: someone else, another patient
	read(at(3), "u-doc", "p-1")      // 3: the incident's patient, by her doctor
	read(at(200), "u-nurse", "p-8")  // 4: after the window
	f.want = []int64{1, 3}

	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, _ := vaulttest.SQLite(t, dir)
	now := at(300)
	f.svc = incident.NewService(incident.Options{
		Store: incident.NewMemStore(), Audit: f.log, Sealer: envelope.NewNoteSealer(db, envelope.New(keys, envelope.Options{}), "incident"),
		Now: func() time.Time { now = now.Add(time.Second); return now },
	})
	f.alert = &detect.Alert{ID: "0123456789abcdef", Rule: "honeytoken", Key: "u-nurse", Severity: detect.SeverityCritical, Score: 90,
		User: "u-nurse", Patients: []string{"p-1"}, First: at(0), Last: at(60), Detected: at(61),
		Why: "u-nurse opened decoy record p-1", Evidence: []string{"trail/1"}, Events: 1, State: detect.StateOpen}
	p := &playbook.Playbook{Name: "honeytoken-touch", Incident: playbook.IncidentSpec{Title: "{rule} by {user}"}, Steps: []playbook.Step{
		{Action: playbook.ActionSuspendAccount, Approval: playbook.ApprovalAuto},
		{Action: playbook.ActionBlockClient, Approval: playbook.ApprovalTwoPerson},
	}}
	rctx := phivault.WithRequestInfo(ctx, phivault.RequestInfo{Actor: incident.Actor})
	in, run, err := f.svc.Respond(rctx, f.alert, p)
	if err != nil || len(run) != 1 {
		t.Fatalf("Respond = %v, %v", run, err)
	}
	if in, err = f.svc.Finish(rctx, in.ID, run[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	if in, _, err = f.svc.Decide(officer(), in.ID, in.Actions[1].ID, in.Version, false, "not needed: a relative (aunt)"); err != nil {
		t.Fatal(err)
	}
	if f.early, err = f.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if f.in, err = f.svc.Change(officer(), in.ID, incident.Change{Version: in.Version, Title: name + "'s chart", Note: "called " + name, Phase: incident.PhaseAnalyse}); err != nil {
		t.Fatal(err)
	}
	return f
}

// write writes the incident's archive against a fresh checkpoint.
func (f *fixture) write(t testing.TB) []byte {
	t.Helper()
	ctx := context.Background()
	cp, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := f.svc.Timeline(ctx, f.in.ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = evidence.Write(ctx, &buf, evidence.Source{Incident: f.in, Timeline: tl, Alerts: []*detect.Alert{f.alert}},
		evidence.Options{Storage: f.store, Checkpoint: cp, Signer: f.signer, Verifier: f.verifier, Created: at(400)})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestWriteVerify(t *testing.T) {
	f := newFixture(t)
	b := f.write(t)
	sum, err := evidence.Verify(bytes.NewReader(b), f.verifier)
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	tl, _ := f.svc.Timeline(context.Background(), f.in.ID)
	if sum.Incident != f.in.ID || sum.Timeline != len(tl) || sum.Alerts != 1 || sum.Actions != 2 || !sum.Created.Equal(at(400)) ||
		sum.Checkpoint.N != f.log.Tree().N {
		t.Fatalf("summary %+v", sum)
	}
	// The entries: the reads in scope, and every change of the incident.
	var got []int64
	for _, l := range lines(t, member(t, b, evidence.MemberEntries)) {
		got = append(got, l.Index)
	}
	want := slices.Clone(f.want)
	for i := int64(5); i < f.log.Tree().N; i++ { // the incident's own entries follow the reads
		want = append(want, i)
	}
	if !slices.Equal(got, want) || sum.Entries != int64(len(want)) {
		t.Fatalf("entries %v (%d), want %v", got, sum.Entries, want)
	}
	// The explanation is there; the alert's view is the API's.
	var alerts []detect.AlertView
	if err := json.Unmarshal(member(t, b, evidence.MemberAlerts), &alerts); err != nil || len(alerts) != 1 || alerts[0].Explanation != f.alert.Why {
		t.Fatalf("alerts %+v, %v", alerts, err)
	}
}

// TestWrite_noPHI: the patient's name, in the title, a note and a
// rejection's reason, is nowhere in the archive.
func TestWrite_noPHI(t *testing.T) {
	f := newFixture(t)
	b := f.write(t)
	for _, s := range []string{name, "Zebediah", "Quint"} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("the archive holds %q", s)
		}
	}
	// A rejection's reason is a person's words: not in the actions. (The
	// trail records it in the change's entry, which the archive proves
	// as it is: reasons are for ids and codes, not names.)
	if bytes.Contains(member(t, b, evidence.MemberActions), []byte("aunt")) {
		t.Error("the actions hold the rejection's reason")
	}
	// The test can fail: the incident does hold her name.
	title, err := f.svc.OpenText(f.in.ID, f.in.Title)
	if err != nil || !strings.Contains(string(title), name) {
		t.Fatalf("title %q, %v", title, err)
	}
}

// TestWrite_checkpointTooOld: a checkpoint before the incident's last
// change cannot prove its timeline, and Write says so.
func TestWrite_checkpointTooOld(t *testing.T) {
	f := newFixture(t)
	tl, _ := f.svc.Timeline(context.Background(), f.in.ID)
	var buf bytes.Buffer
	_, err := evidence.Write(context.Background(), &buf, evidence.Source{Incident: f.in, Timeline: tl},
		evidence.Options{Storage: f.store, Checkpoint: f.early, Signer: f.signer, Verifier: f.verifier})
	if err == nil || !strings.Contains(err.Error(), "newer") || buf.Len() != 0 {
		t.Fatalf("Write with an old checkpoint = %v (%d bytes), want a refusal", err, buf.Len())
	}
	// One signed by another key is refused too.
	other, otherV := storetest.NewSigner(t)
	cp, _ := auditlog.SignCheckpoint(auditlog.Checkpoint{Origin: other.Name(), Tree: f.log.Tree()}, other)
	if _, err := evidence.Write(context.Background(), &buf, evidence.Source{Incident: f.in, Timeline: tl},
		evidence.Options{Storage: f.store, Checkpoint: cp, Signer: f.signer, Verifier: f.verifier}); err == nil {
		t.Fatal("Write with a checkpoint of another key succeeded")
	}
	_ = otherV
}

func TestVerify_tampered(t *testing.T) {
	f := newFixture(t)
	b := f.write(t)
	other, otherV := storetest.NewSigner(t)
	tests := []struct {
		name   string
		edit   func(ms []tarMember) []tarMember
		key    note.Verifier
		member string // the member the error must name
	}{
		{"entry byte", func(ms []tarMember) []tarMember {
			ms[5].body = bytes.Replace(ms[5].body, []byte(`"actor":"u-doc"`), []byte(`"actor":"u-dod"`), 1)
			return ms
		}, nil, evidence.MemberEntries},
		{"entry dropped", func(ms []tarMember) []tarMember {
			ms[5].body = dropLine(ms[5].body, 0)
			return ms
		}, nil, evidence.MemberEntries},
		{"action changed", func(ms []tarMember) []tarMember {
			ms[4].body = bytes.Replace(ms[4].body, []byte(`"state": "done"`), []byte(`"state": "undone"`), 1)
			return ms
		}, nil, evidence.MemberActions},
		{"title added", func(ms []tarMember) []tarMember {
			ms[1].body = bytes.Replace(ms[1].body, []byte(`"phase"`), []byte(`"title": "x", "phase"`), 1)
			return ms
		}, nil, evidence.MemberIncident},
		{"checkpoint swapped", func(ms []tarMember) []tarMember {
			ms[0].body = bytes.Replace(ms[0].body, []byte(`"checkpoint"`), []byte(`"checkpoint_"`), 1)
			return ms
		}, nil, evidence.MemberManifest},
		{"member moved", func(ms []tarMember) []tarMember {
			ms[2], ms[3] = ms[3], ms[2]
			return ms
		}, nil, evidence.MemberTimeline},
		{"member missing", func(ms []tarMember) []tarMember { return ms[:5] }, nil, evidence.MemberEntries},
		{"member added", func(ms []tarMember) []tarMember { return append(ms, tarMember{"extra", []byte("x")}) }, nil, ""},
		{"wrong key", func(ms []tarMember) []tarMember { return ms }, otherV, evidence.MemberManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == nil {
				key = f.verifier
			}
			bad := retar(t, tt.edit(untar(t, b)))
			if bytes.Equal(bad, b) && tt.key == nil {
				t.Fatal("the edit changed nothing")
			}
			_, err := evidence.Verify(bytes.NewReader(bad), key)
			var ee *evidence.Error
			if !errors.As(err, &ee) || ee.Member != tt.member {
				t.Fatalf("Verify = %v, want an error naming %q", err, tt.member)
			}
		})
	}
	_ = other

	// Forged with the signer itself (an insider with the key): the
	// manifest signs, so only the content checks stand.
	resign := func(ms []tarMember, edit func(m *evidence.Manifest)) []tarMember {
		n, err := note.Open(ms[0].body, note.VerifierList(f.verifier))
		if err != nil {
			t.Fatal(err)
		}
		var m evidence.Manifest
		if err := json.Unmarshal([]byte(n.Text), &m); err != nil {
			t.Fatal(err)
		}
		for i := range m.Members {
			h := sha256.Sum256(ms[i+1].body)
			m.Members[i].Size, m.Members[i].SHA256 = int64(len(ms[i+1].body)), hex.EncodeToString(h[:])
		}
		edit(&m)
		text, _ := json.Marshal(m)
		if ms[0].body, err = note.Sign(&note.Note{Text: string(text) + "\n"}, f.signer); err != nil {
			t.Fatal(err)
		}
		return ms
	}
	t.Run("timeline entry dropped, manifest re-signed", func(t *testing.T) {
		ms := untar(t, b)
		ls := lines(t, ms[5].body)
		ms[5].body = dropLine(ms[5].body, len(ls)-1) // the last change's entry
		bad := retar(t, resign(ms, func(m *evidence.Manifest) { m.Counts.Entries-- }))
		_, err := evidence.Verify(bytes.NewReader(bad), f.verifier)
		var ee *evidence.Error
		if !errors.As(err, &ee) || ee.Member != evidence.MemberTimeline || !strings.Contains(err.Error(), "no audit entry") {
			t.Fatalf("Verify = %v, want the timeline's event without an entry", err)
		}
	})
	t.Run("entry and leaf hash edited, manifest re-signed", func(t *testing.T) {
		ms := untar(t, b)
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		for _, l := range lines(t, ms[5].body) {
			if edited := bytes.Replace(l.Entry, []byte(`"actor":"u-doc"`), []byte(`"actor":"u-dod"`), 1); !bytes.Equal(edited, l.Entry) {
				l.Entry, l.LeafHash = edited, tlog.RecordHash(edited)
			}
			enc.Encode(l)
		}
		if bytes.Equal(out.Bytes(), ms[5].body) {
			t.Fatal("the edit changed nothing")
		}
		ms[5].body = out.Bytes()
		_, err := evidence.Verify(bytes.NewReader(retar(t, resign(ms, func(*evidence.Manifest) {}))), f.verifier)
		var ee *evidence.Error
		if !errors.As(err, &ee) || ee.Member != evidence.MemberEntries || !strings.Contains(err.Error(), "not in the checkpoint's tree") {
			t.Fatalf("Verify = %v, want the entry's proof to fail", err)
		}
	})
	t.Run("older checkpoint, manifest re-signed", func(t *testing.T) {
		bad := retar(t, resign(untar(t, b), func(m *evidence.Manifest) { m.Checkpoint = string(f.early) }))
		_, err := evidence.Verify(bytes.NewReader(bad), f.verifier)
		var ee *evidence.Error
		if !errors.As(err, &ee) || ee.Member != evidence.MemberEntries {
			t.Fatalf("Verify = %v, want the entries' proofs to fail", err)
		}
	})
	t.Run("re-signed unchanged", func(t *testing.T) { // the near miss: resign itself is sound
		if _, err := evidence.Verify(bytes.NewReader(retar(t, resign(untar(t, b), func(*evidence.Manifest) {}))), f.verifier); err != nil {
			t.Fatalf("Verify = %v", err)
		}
	})
}

func TestVerify_truncated(t *testing.T) {
	f := newFixture(t)
	b := f.write(t)
	for _, n := range []int{0, 1, 511, 512, 1024, len(b) / 3, len(b) / 2, len(b) - 1025, len(b) - 1} {
		if _, err := evidence.Verify(bytes.NewReader(b[:n]), f.verifier); err == nil {
			t.Errorf("Verify of the first %d bytes of %d succeeded", n, len(b))
		}
	}
	if _, err := evidence.Verify(bytes.NewReader(append(slices.Clone(b), 'x')), f.verifier); err == nil {
		t.Error("Verify of the archive and a byte more succeeded")
	}
	if _, err := evidence.Verify(bytes.NewReader(b), f.verifier); err != nil { // the near miss
		t.Errorf("Verify of the whole archive = %v", err)
	}
}

// FuzzVerify: Verify never panics, and accepts nothing but the archive
// as written (a fuzzer cannot sign).
func FuzzVerify(f *testing.F) {
	// A small archive made without a vault, so that each worker starts
	// fast: an incident of two changes and one read in scope.
	ctx := context.Background()
	store := storetest.NewMemAudit()
	signer, verifier := storetest.NewSigner(f)
	l := auditlog.New(store, signer.Name(), signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	in := &incident.Incident{ID: "inc-0123456789abcdef0123456789abcdef", Phase: incident.PhaseContain, Source: incident.SourceManual,
		Scope: incident.Scope{Users: []string{"u-1"}}, Actions: []incident.Action{{ID: "act-1", Kind: playbook.ActionSuspendAccount, State: incident.ActionDone}}}
	var tl []*incident.Event
	for i, e := range []*phivault.AuditEntry{
		{Time: at(0), RequestID: "r-1", Actor: "u-1", Action: phivault.ActionRead, Compartments: []string{"p-1"}, Outcome: "ok"},
		{Time: at(1), RequestID: "r-2", Actor: "po-1", Action: phivault.ActionIncident, TargetType: incident.TargetType, TargetID: in.ID, Outcome: "ok"},
		{Time: at(2), RequestID: "r-3", Actor: "po-1", Action: phivault.ActionIncident, TargetType: incident.TargetType, TargetID: in.ID, Outcome: "ok"},
	} {
		if err := l.Append(ctx, e); err != nil {
			f.Fatal(err)
		}
		if i > 0 {
			tl = append(tl, &incident.Event{At: e.Time, Actor: e.Actor, Kind: incident.EventPhase, Request: e.RequestID})
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Write(ctx, &buf, evidence.Source{Incident: in, Timeline: tl}, evidence.Options{
		Storage: store, Checkpoint: cp, Signer: signer, Verifier: verifier, Created: at(10)}); err != nil {
		f.Fatal(err)
	}
	b := buf.Bytes()
	if _, err := evidence.Verify(bytes.NewReader(b), verifier); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := evidence.Verify(bytes.NewReader(data), verifier); err == nil && !bytes.Equal(data, b) {
			t.Fatalf("Verify accepted %d bytes that are not the archive", len(data))
		}
	})
}

type tarMember struct {
	name string
	body []byte
}

func untar(t testing.TB, b []byte) []tarMember {
	t.Helper()
	var ms []tarMember
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, tarMember{hdr.Name, body})
	}
}

func retar(t testing.TB, ms []tarMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.name, Size: int64(len(m.body)), Mode: 0o600, ModTime: at(400), Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.body)
	}
	tw.Close()
	return buf.Bytes()
}

func member(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	for _, m := range untar(t, b) {
		if m.name == name {
			return m.body
		}
	}
	t.Fatalf("no member %s", name)
	return nil
}

func lines(t testing.TB, b []byte) []auditlog.ExportLine {
	t.Helper()
	var out []auditlog.ExportLine
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var l auditlog.ExportLine
		if err := dec.Decode(&l); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
}

func dropLine(b []byte, i int) []byte {
	ls := bytes.SplitAfter(b, []byte("\n"))
	return bytes.Join(slices.Delete(ls, i, i+1), nil)
}
