package detect_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/sqlitestore"
	"github.com/phivault/phivault/sqlite"
)

// The tests' rules: watchRule reports every read of one patient, keyed
// user|patient; countRule counts each user's events (state saved in
// snapshots) and reports every event into a bucket of ten, keyed
// user|bucket, so its alerts are only right if its state is.

const watched = "p-x"

type watchRule struct{}

func (watchRule) Name() string { return "test-watch" }

func (watchRule) Observe(x *detect.Context, ev *detect.Event) {
	if ev.Action != phivault.ActionRead || !slices.Contains(ev.Patients, watched) {
		return
	}
	x.Report(detect.Finding{
		Rule: "test-watch", Key: ev.User + "|" + watched, Severity: detect.SeverityHigh, Score: 50,
		User: ev.User, Patients: []string{watched}, Why: ev.User + " read " + watched + ".",
	})
}

type countRule struct {
	seen     map[string]int64 // events by user
	observed int              // Observe calls, replays included (not state)
}

func newCountRule() *countRule { return &countRule{seen: map[string]int64{}} }

func (*countRule) Name() string { return "test-count" }

func (r *countRule) Observe(x *detect.Context, ev *detect.Event) {
	r.observed++
	r.seen[ev.User]++
	x.Report(detect.Finding{
		Rule: "test-count", Key: bucketKey(ev.User, r.seen[ev.User]), Severity: detect.SeverityLow, Score: 10,
		User: ev.User, Why: ev.User + " acted.",
	})
}

// bucketKey is the key of the nth (from 1) event of user.
func bucketKey(user string, n int64) string {
	return user + "|" + strconv.FormatInt((n-1)/10, 10)
}

func (r *countRule) MarshalState() ([]byte, error) { return json.Marshal(r.seen) }

func (r *countRule) UnmarshalState(b []byte) error {
	r.seen = map[string]int64{}
	return json.Unmarshal(b, &r.seen)
}

// entry returns the trail entry i of the tests: users u0..u2, every
// seventh a read of the watched patient, every seventh shifted by three a
// search touching it (a near miss: not a read).
func entry(i int) *phivault.AuditEntry {
	e := &phivault.AuditEntry{
		Time:         time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Actor:        "u" + strconv.Itoa(i%3),
		Action:       phivault.ActionRead,
		TargetType:   "Patient",
		TargetID:     "p-" + strconv.Itoa(i),
		Compartments: []string{"p-" + strconv.Itoa(i)},
		Outcome:      "ok",
	}
	switch i % 7 {
	case 0:
		e.TargetID, e.Compartments = watched, []string{watched}
	case 3:
		e.Action, e.TargetID, e.Compartments = phivault.ActionSearch, "", []string{"p-1", watched}
	}
	return e
}

// want is what the rules must have made of entries [0, n).
type want struct {
	watch  map[string][]string     // user → evidence refs of reads of the watched patient (the first MaxEvidence)
	events map[string]int64        // user → reads of the watched patient
	count  map[string]int64        // user → events
	times  map[string][2]time.Time // user → first and last watched read
}

func wantOf(n int) want {
	w := want{watch: map[string][]string{}, events: map[string]int64{}, count: map[string]int64{}, times: map[string][2]time.Time{}}
	for i := range n {
		e := entry(i)
		w.count[e.Actor]++
		if i%7 == 0 {
			if len(w.watch[e.Actor]) < detect.MaxEvidence {
				w.watch[e.Actor] = append(w.watch[e.Actor], "trail/"+strconv.Itoa(i))
			}
			w.events[e.Actor]++
			ts := w.times[e.Actor]
			if ts[0].IsZero() {
				ts[0] = e.Time
			}
			ts[1] = e.Time
			w.times[e.Actor] = ts
		}
	}
	return w
}

// check compares the store's alerts with w.
func check(t *testing.T, s detect.Store, w want) {
	t.Helper()
	ctx := context.Background()
	watch, err := s.Alerts(ctx, detect.AlertFilter{Rule: "test-watch"})
	if err != nil {
		t.Fatal(err)
	}
	if len(watch) != len(w.watch) {
		t.Errorf("%d watch alerts, want %d", len(watch), len(w.watch))
	}
	for _, a := range watch {
		refs := w.watch[a.User]
		if a.ID != detect.AlertID("test-watch", a.User+"|"+watched) || a.Events != w.events[a.User] || !slices.Equal(a.Evidence, refs) {
			t.Errorf("watch alert of %s: %d events, evidence %v; want %d, %v", a.User, a.Events, a.Evidence, w.events[a.User], refs)
		}
		if ts := w.times[a.User]; !a.First.Equal(ts[0]) || !a.Last.Equal(ts[1]) || !slices.Equal(a.Patients, []string{watched}) {
			t.Errorf("watch alert of %s: first %v last %v patients %v; want %v", a.User, a.First, a.Last, a.Patients, ts)
		}
	}
	count, err := s.Alerts(ctx, detect.AlertFilter{Rule: "test-count"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, a := range count {
		got[a.Key] = a.Events
	}
	wantCount := map[string]int64{}
	for u, n := range w.count {
		for k := int64(1); k <= n; k++ {
			wantCount[bucketKey(u, k)]++
		}
	}
	if !maps.Equal(got, wantCount) {
		t.Errorf("count alerts (key → events) = %v\nwant %v", got, wantCount)
	}
}

// logTrail is the pipeline's Trail over an auditlog.Log on SQLite, as
// phivault serve reads it: the committed tree's size, entries decoded.
type logTrail struct {
	log *auditlog.Log
	db  *sqlite.DB
}

func (t logTrail) Size(ctx context.Context) (int64, error) { return t.log.Tree().N, nil }

func (t logTrail) Entries(ctx context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	raw, err := t.db.ReadAuditEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	return decodeEntries(raw)
}

func decodeEntries(raw [][]byte) ([]*phivault.AuditEntry, error) {
	out := make([]*phivault.AuditEntry, len(raw))
	for i, b := range raw {
		if b == nil {
			continue
		}
		e, err := auditlog.Decode(b)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// openLog opens a real audit log on SQLite in dir.
func openLog(t testing.TB, dir string) (*auditlog.Log, *sqlite.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := auditlog.New(db, "test", nil)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, db
}

func appendEntries(t testing.TB, l *auditlog.Log, from, to int) {
	t.Helper()
	var es []*phivault.AuditEntry
	for i := from; i < to; i++ {
		es = append(es, entry(i))
	}
	if err := l.Append(context.Background(), es...); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newPipeline returns a pipeline of the test rules over trail and s.
func newPipeline(s detect.Store, trail detect.Trail, count *countRule) *detect.Pipeline {
	known := func(id string) *detect.Alert {
		a, err := s.Alert(context.Background(), id)
		if err != nil {
			return nil
		}
		return a
	}
	eng := detect.NewEngine(detect.NewDirectory(), []detect.Rule{watchRule{}, count}, known)
	p := detect.NewPipeline(s, eng)
	p.Trail = trail
	return p
}

// drain steps p until it is caught up, failing on an error.
func drain(t testing.TB, p *detect.Pipeline) {
	t.Helper()
	for i := 0; ; i++ {
		n, err := p.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if i > 100000 {
			t.Fatal("pipeline never caught up")
		}
	}
}

// TestPipeline_onceAndMerged runs a pipeline over a real audit trail in
// small steps, so findings merge into alerts committed before: each
// event is processed once, the alerts carry exact counts and evidence,
// and searches of the watched patient (near misses) raise nothing.
func TestPipeline_onceAndMerged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, db := openLog(t, dir)
	s := openStore(t, filepath.Join(dir, "detect.db"))
	const n = 200
	appendEntries(t, l, 0, 120)
	count := newCountRule()
	p := newPipeline(s, logTrail{l, db}, count)
	p.Batch = 9
	var committed atomic.Int64
	p.OnCommit = func(alerts []*detect.Alert) { committed.Add(int64(len(alerts))) }
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	drain(t, p)
	appendEntries(t, l, 120, n)
	drain(t, p)

	check(t, s, wantOf(n))
	if count.observed != n {
		t.Errorf("count rule observed %d events, want %d", count.observed, n)
	}
	st := p.Status()
	if st.Cursor.Trail != n || st.Events != n || st.Lag != 0 || !p.Caught() || st.Findings["test-count"] != n {
		t.Errorf("status %+v, want cursor and events %d, caught", st, n)
	}
	if committed.Load() != st.Alerts || committed.Load() == 0 {
		t.Errorf("OnCommit saw %d alerts, status says %d", committed.Load(), st.Alerts)
	}
	saved, err := s.Load(ctx)
	if err != nil || saved.Cursor.Trail != n {
		t.Errorf("stored cursor %+v, %v; want %d", saved.Cursor, err, n)
	}
}

// TestPipeline_ingest feeds access events and directory records through
// the ingest stream: events are placed at their sequence (evidence
// "ingest/<seq>"), merged with the trail's, and directory records are
// committed with the cursor.
func TestPipeline_ingest(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "detect.db"))
	read := func(user, patient string) detect.Record {
		return detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
			Time: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC), System: "ehr", User: user,
			Action: phivault.ActionRead, Patients: []string{patient}, OK: true, Outcome: "ok",
		}}
	}
	recs := []detect.Record{
		{Kind: detect.RecordStaff, User: &detect.User{ID: "ehr:u1", Roles: []string{"nurse"}}},
		read("ehr:u1", watched),
		read("ehr:u1", "ehr:p2"), // near miss
		{Kind: detect.RecordHoneytoken, Honeytoken: "ehr:p9"},
		read("ehr:u1", watched),
	}
	if _, err := s.Ingest(ctx, recs); err != nil {
		t.Fatal(err)
	}
	count := newCountRule()
	p := newPipeline(s, nil, count)
	p.Batch = 2
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	drain(t, p)
	a, err := s.Alert(ctx, detect.AlertID("test-watch", "ehr:u1|"+watched))
	if err != nil {
		t.Fatal(err)
	}
	if a.Events != 2 || !slices.Equal(a.Evidence, []string{"ingest/2", "ingest/5"}) {
		t.Errorf("ingested reads: %d events, evidence %v; want 2, [ingest/2 ingest/5]", a.Events, a.Evidence)
	}
	if count.seen["ehr:u1"] != 3 {
		t.Errorf("count rule saw %d events of ehr:u1, want 3", count.seen["ehr:u1"])
	}
	saved, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Cursor.Ingest != 5 || len(saved.Users) != 1 || !slices.Equal(saved.Honeytokens, []string{"ehr:p9"}) {
		t.Errorf("saved cursor %+v, users %d, honeytokens %v", saved.Cursor, len(saved.Users), saved.Honeytokens)
	}
}

// TestPipeline_snapshotReplay commits a snapshot mid-way, then more events
// without one, and opens a second pipeline with fresh rules on the same
// store: it restores the snapshot and replays, silently, exactly the
// events after it, ending with the first pipeline's rule state and
// without changing any alert.
func TestPipeline_snapshotReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, db := openLog(t, dir)
	s := openStore(t, filepath.Join(dir, "detect.db"))
	appendEntries(t, l, 0, 100)
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }

	countA := newCountRule()
	a := newPipeline(s, logTrail{l, db}, countA)
	a.Batch, a.Now, a.SnapshotEvery = 10, now, time.Minute
	if err := a.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if i == 6 {
			clock = clock.Add(time.Hour) // the 7th step snapshots, at 70
		}
		if n, err := a.Step(ctx); err != nil || n != 10 {
			t.Fatalf("step %d: %d, %v", i, n, err)
		}
	}
	saved, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Snapshot == nil || saved.SnapshotAt.Trail != 70 || saved.Cursor.Trail != 100 {
		t.Fatalf("saved snapshot at %+v, cursor %+v; want 70, 100", saved.SnapshotAt, saved.Cursor)
	}
	before, err := s.Alerts(ctx, detect.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}

	countB := newCountRule()
	var changed int
	b := newPipeline(s, logTrail{l, db}, countB)
	b.Batch, b.Now = 10, now
	b.OnCommit = func(alerts []*detect.Alert) { changed += len(alerts) }
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(countB.seen, countA.seen) {
		t.Errorf("restored state %v, want %v", countB.seen, countA.seen)
	}
	if countB.observed != 30 {
		t.Errorf("replayed %d events, want the 30 after the snapshot", countB.observed)
	}
	drain(t, b) // nothing new: must not commit anything
	after, err := s.Alerts(ctx, detect.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if changed != 0 || !equalAlerts(before, after) {
		t.Errorf("opening with a replay changed alerts (%d committed)", changed)
	}
	// The restored state carries on.
	appendEntries(t, l, 100, 130)
	drain(t, b)
	check(t, s, wantOf(130))
}

func equalAlerts(a, b []*detect.Alert) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestPipeline_restartWithoutSnapshot restarts before any snapshot was
// taken: the rules' state is rebuilt from the start of the trail.
func TestPipeline_restartWithoutSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, db := openLog(t, dir)
	s := openStore(t, filepath.Join(dir, "detect.db"))
	appendEntries(t, l, 0, 45)
	a := newPipeline(s, logTrail{l, db}, newCountRule())
	a.Batch, a.SnapshotEvery = 10, time.Hour
	if err := a.Open(ctx); err != nil {
		t.Fatal(err)
	}
	drain(t, a)
	if saved, _ := s.Load(ctx); saved.Snapshot != nil {
		t.Fatal("a snapshot was taken")
	}
	appendEntries(t, l, 45, 80)
	count := newCountRule()
	b := newPipeline(s, logTrail{l, db}, count)
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if want := wantOf(45).count; !maps.Equal(count.seen, want) {
		t.Errorf("state after restart %v, want %v", count.seen, want)
	}
	drain(t, b)
	check(t, s, wantOf(80))
	if saved, _ := s.Load(ctx); saved.Snapshot == nil || saved.SnapshotAt.Trail != 80 {
		t.Errorf("after a replay from the start, no snapshot at the first commit (at %+v)", saved.SnapshotAt)
	}
}

// failStore fails chosen calls once.
type failStore struct {
	detect.Store
	commits, reads atomic.Int64
	failCommit     int64 // fail the commit with this number (from 1) once
	failRead       int64 // fail the ReadIngest with this number once
}

var errInjected = errors.New("injected failure")

func (f *failStore) Commit(ctx context.Context, c *detect.Commit) error {
	if f.commits.Add(1) == f.failCommit {
		return errInjected
	}
	return f.Store.Commit(ctx, c)
}

func (f *failStore) ReadIngest(ctx context.Context, after int64, limit int) ([]detect.Record, error) {
	if f.reads.Add(1) == f.failRead {
		return nil, errInjected
	}
	return f.Store.ReadIngest(ctx, after, limit)
}

// TestPipeline_failures fails a commit, or a read after the trail's
// events were read, once: the pipeline retries without observing any
// event twice, so the alerts and the rule state are exact.
func TestPipeline_failures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		store func(detect.Store) *failStore
	}{
		{"commit", func(s detect.Store) *failStore { return &failStore{Store: s, failCommit: 3} }},
		{"commit with snapshot", func(s detect.Store) *failStore { return &failStore{Store: s, failCommit: 1} }},
		{"read ingest", func(s detect.Store) *failStore { return &failStore{Store: s, failRead: 2} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			l, db := openLog(t, dir)
			fs := tt.store(openStore(t, filepath.Join(dir, "detect.db")))
			appendEntries(t, l, 0, 60)
			// Ingest records too, so that steps read the ingest stream
			// (only when it has grown).
			recs := make([]detect.Record, 20)
			for i := range recs {
				recs[i] = detect.Record{Kind: detect.RecordHoneytoken, Honeytoken: fmt.Sprint("decoy-", i)}
			}
			if _, err := fs.Ingest(ctx, recs); err != nil {
				t.Fatal(err)
			}
			count := newCountRule()
			p := newPipeline(fs, logTrail{l, db}, count)
			p.Batch, p.SnapshotEvery = 7, 0 // a snapshot with every commit
			if err := p.Open(ctx); err != nil {
				t.Fatal(err)
			}
			var failed int
			for range 100 {
				n, err := p.Step(ctx)
				if errors.Is(err, errInjected) {
					failed++
					if p.Caught() {
						t.Error("Caught after a failed step")
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			if failed != 1 || p.Status().Failures != 1 {
				t.Fatalf("%d failures, status %d; want 1", failed, p.Status().Failures)
			}
			check(t, fs, wantOf(60))
			if want := wantOf(60).count; !maps.Equal(count.seen, want) || count.observed != 60 {
				t.Errorf("rule state %v after %d observations, want %v after 60", count.seen, count.observed, want)
			}
			// A restart from the store agrees.
			again := newCountRule()
			q := newPipeline(fs.Store, logTrail{l, db}, again)
			if err := q.Open(ctx); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(again.seen, count.seen) {
				t.Errorf("state after restart %v, want %v", again.seen, count.seen)
			}
		})
	}
}

// The kill -9 test: a child process (this test binary, re-executed with
// killChildEnv set to the data folder) runs the pipeline live on the
// audit trail file and the store file while the parent keeps appending;
// the parent kills it with SIGKILL at chosen moments, restarts it, and
// finally checks that the alerts count every matching event exactly once.
const killChildEnv = "PHIVAULT_DETECT_KILL9_CHILD"

// fileTrail reads the audit trail's SQLite file directly, read-only, as
// a second process can.
type fileTrail struct{ db *sql.DB }

func (f fileTrail) Size(ctx context.Context) (int64, error) {
	var n int64
	err := f.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n)
	return n, err
}

func (f fileTrail) Entries(ctx context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	raw := make([][]byte, end-start)
	rows, err := f.db.QueryContext(ctx, `SELECT idx, data FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx`, start, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idx  int64
			data []byte
		)
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, err
		}
		raw[idx-start] = data
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return decodeEntries(raw)
}

// killChild is the child's side: run the pipeline, printing its cursor.
func killChild(dir string, snapshotEvery time.Duration) error {
	ctx := context.Background()
	auditPath := sqlite.DefaultAuditPath(filepath.Join(dir, "vault.db"))
	adb, err := sql.Open("sqlite", "file:"+(&url.URL{Path: auditPath}).EscapedPath()+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return err
	}
	defer adb.Close()
	s, err := sqlitestore.Open(ctx, filepath.Join(dir, "detect.db"))
	if err != nil {
		return err
	}
	defer s.Close()
	p := newPipeline(s, fileTrail{adb}, newCountRule())
	p.Batch, p.Poll, p.SnapshotEvery = 16, 2*time.Millisecond, snapshotEvery
	if err := p.Open(ctx); err != nil {
		return err
	}
	saved, err := s.Load(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("open %d %d\n", saved.Cursor.Trail, saved.SnapshotAt.Trail)
	go p.Run(ctx)
	deadline := time.Now().Add(10 * time.Second) // in case the parent is gone
	for time.Now().Before(deadline) {
		fmt.Printf("cursor %d\n", p.Status().Cursor.Trail)
		time.Sleep(time.Millisecond)
	}
	return errors.New("not killed")
}

func TestPipeline_kill9(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		every, _ := time.ParseDuration(os.Getenv(killChildEnv + "_SNAPSHOT"))
		if err := killChild(dir, every); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	l, db := openLog(t, dir)
	var (
		wg       sync.WaitGroup
		appended atomic.Int64
		stop     atomic.Bool
	)
	wg.Add(1)
	go func() { // events keep arriving until every child was killed
		defer wg.Done()
		for i := 0; !stop.Load() && i < 50000; i += 10 {
			var es []*phivault.AuditEntry
			for j := i; j < i+10; j++ {
				es = append(es, entry(j))
			}
			if err := l.Append(context.Background(), es...); err != nil {
				t.Error(err)
				return
			}
			appended.Store(int64(i + 10))
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// Each child is killed once its cursor reaches at (or right after it
	// opened, for at < 0: during its replay or first steps). Some snapshot
	// often, some never: their successors replay from the start.
	var opened []int64
	for i, at := range []int64{200, -1, 500, -1} {
		every := []time.Duration{time.Hour, 15 * time.Millisecond}[i%2]
		opened = append(opened, runKilled(t, dir, at, every))
	}
	stop.Store(true)
	wg.Wait()
	total := appended.Load()
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if opened[0] != 0 || opened[2] < 200 || !slices.IsSorted(opened) {
		t.Errorf("children opened at cursors %v; want 0, then growing, the third ≥ 200", opened)
	}

	// The last run, here: the store must hold exactly every event once.
	s := openStore(t, filepath.Join(dir, "detect.db"))
	count := newCountRule()
	p := newPipeline(s, logTrail{l, db}, count)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	drain(t, p)
	saved, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if size := l.Tree().N; saved.Cursor.Trail != size || size != total {
		t.Errorf("cursor %d, trail size %d, want %d", saved.Cursor.Trail, size, total)
	}
	check(t, s, wantOf(int(total)))
	if want := wantOf(int(total)).count; !maps.Equal(count.seen, want) {
		t.Errorf("rule state %v, want %v", count.seen, want)
	}
	t.Logf("children opened at cursors %v; %d entries in all", opened, total)
}

// runKilled runs a child on dir and kills it with SIGKILL once its
// cursor reaches at (at < 0: 3 ms after it opened). It returns the
// cursor the child opened at.
func runKilled(t *testing.T, dir string, at int64, snapshotEvery time.Duration) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPipeline_kill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir, killChildEnv+"_SNAPSHOT="+snapshotEvery.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		killed = true
		cmd.Process.Kill() // SIGKILL
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// A child that never gets there is killed too, and fails the test.
	timer := time.AfterFunc(8*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	open, last := int64(-1), int64(0)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "open":
			open = n
			if at < 0 {
				time.Sleep(3 * time.Millisecond)
				kill()
			}
		case "cursor":
			last = n
			if at >= 0 && n >= at {
				kill()
			}
		}
		if killed {
			break
		}
	}
	if !killed || open < 0 {
		cmd.Process.Kill()
		cmd.Wait() // before reading stderr
		t.Fatalf("child ended before it was killed (opened at %d, cursor %d): %s", open, last, stderr.String())
	}
	return open
}

// TestPipeline_decoyMadeAndTouchedInOneStep registers a honeytoken and
// touches it before the pipeline steps once: the registration (ingest
// stream) is applied before the trail's events of the same step, so the
// touch is caught.
func TestPipeline_decoyMadeAndTouchedInOneStep(t *testing.T) {
	ctx := context.Background()
	l, db := openLog(t, t.TempDir())
	store := detect.NewMemStore()
	if _, err := store.Ingest(ctx, []detect.Record{{Kind: detect.RecordHoneytoken, Honeytoken: "decoy"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &phivault.AuditEntry{Actor: "u1", Roles: []string{"nurse"}, Action: phivault.ActionRead,
		TargetType: "Patient", TargetID: "decoy", Compartments: []string{"decoy"}, Returned: []string{"Patient/decoy/_history/1"}, Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p := detect.NewPipeline(store, detect.NewEngine(detect.NewDirectory(), detect.DefaultRules(), nil))
	p.Trail = logTrail{l, db}
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Step(ctx); err != nil || n != 2 {
		t.Fatalf("Step = %d, %v; want both streams' items in one step", n, err)
	}
	alerts, err := store.Alerts(ctx, detect.AlertFilter{Rule: detect.RuleHoneytoken})
	if err != nil || len(alerts) != 1 || alerts[0].User != "u1" {
		t.Fatalf("honeytoken alerts = %+v, %v; want one of u1", alerts, err)
	}
}

// TestPipeline_mergesAcrossSteps runs an engine made without a lookup of
// committed alerts (as "phivault detect replay" makes it) over events
// spread over several steps: the pipeline gives it one, so the findings
// of later steps merge into the alert an earlier step committed.
func TestPipeline_mergesAcrossSteps(t *testing.T) {
	ctx := context.Background()
	store := detect.NewMemStore()
	recs := make([]detect.Record, 10)
	for i := range recs {
		recs[i] = detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
			Time: time.Date(2026, 12, 6, 8, i, 0, 0, time.UTC), User: "ehr:u1", Action: phivault.ActionRead,
			Patients: []string{watched}, OK: true, Outcome: "ok"}}
	}
	if _, err := store.Ingest(ctx, recs); err != nil {
		t.Fatal(err)
	}
	p := detect.NewPipeline(store, detect.NewEngine(detect.NewDirectory(), []detect.Rule{watchRule{}}, nil))
	p.Batch = 3
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := p.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	alerts, err := store.Alerts(ctx, detect.AlertFilter{})
	if err != nil || len(alerts) != 1 || alerts[0].Events != 10 || len(alerts[0].Evidence) != 10 ||
		!alerts[0].First.Equal(recs[0].Event.Time) {
		t.Fatalf("alerts = %+v, %v; want one alert of all 10 events", alerts, err)
	}
}
