package detect_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/phivault/phivault/detect"
)

// notifyAlert returns an alert of ids only.
func notifyAlert(rule, user string, sev detect.Severity, patients ...string) *detect.Alert {
	key := user + "|" + strings.Join(patients, ",")
	return &detect.Alert{
		ID: detect.AlertID(rule, key), Rule: rule, Key: key, Severity: sev, Score: 70, User: user,
		Patients: patients, First: alertsT0.Add(-time.Minute), Last: alertsT0, Detected: alertsT0.Add(time.Second),
		Why:      "User " + user + " opened the record of patient " + strings.Join(patients, ",") + ", who shares their family name and address.",
		Evidence: []string{"trail/41", "trail/42"}, Events: 2, Factors: []string{"first access to this patient"},
		State: detect.StateOpen,
	}
}

// notifyRecorder is a Notifier that keeps what it is given.
type notifyRecorder struct {
	mu      sync.Mutex
	batches [][]*detect.Alert
	block   chan struct{} // if not nil, Notify waits for it
}

func (n *notifyRecorder) Notify(ctx context.Context, alerts []*detect.Alert) error {
	if n.block != nil {
		select {
		case <-n.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.batches = append(n.batches, alerts)
	return nil
}

func (n *notifyRecorder) sent() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, b := range n.batches {
		for _, a := range b {
			out = append(out, a.ID+"@"+a.Severity.String())
		}
	}
	return out
}

func TestDispatcher_OnCommit(t *testing.T) {
	rec := &notifyRecorder{}
	reg := prometheus.NewRegistry()
	m, err := detect.NewMetrics(reg, func() int64 { return 7 })
	if err != nil {
		t.Fatal(err)
	}
	d := detect.NewDispatcher()
	d.Notifiers["rec"] = rec
	d.Metrics = m
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	a := notifyAlert("family", "u1", detect.SeverityMedium, "p1")
	quiet := notifyAlert("neighbour", "u2", detect.SeverityHigh, "p2")
	quiet.Suppressed = true
	dismissed := notifyAlert("coworker", "u3", detect.SeverityHigh, "p3")
	dismissed.State = detect.StateFalsePositive

	d.OnCommit([]*detect.Alert{a, quiet, dismissed}) // a pages; the others do not
	merged := *a
	merged.Events = 5
	d.OnCommit([]*detect.Alert{&merged}) // merged, same severity: no page
	up := merged
	up.Severity, up.Events = detect.SeverityHigh, 6
	d.OnCommit([]*detect.Alert{&up}) // escalated: pages again
	down := up
	down.Severity, down.Events = detect.SeverityLow, 7
	d.OnCommit([]*detect.Alert{&down}) // never lower than what was sent: no page
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{a.ID + "@medium", a.ID + "@high"}
	if got := rec.sent(); !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}

	// Every alert counts, suppressed or not; findings by events merged.
	for _, c := range []struct {
		got  float64
		name string
		want float64
	}{
		{counterValue(t, reg, "phivault_detect_alerts_total", "family", "medium"), "alerts family medium", 1},
		{counterValue(t, reg, "phivault_detect_alerts_total", "family", "high"), "alerts family high", 1},
		{counterValue(t, reg, "phivault_detect_alerts_total", "neighbour", "high"), "alerts neighbour high", 1},
		{counterValue(t, reg, "phivault_detect_alerts_total", "coworker", "high"), "alerts coworker high", 1},
		{counterValue(t, reg, "phivault_detect_findings_total", "family"), "findings family", 7},
		{counterValue(t, reg, "phivault_detect_findings_total", "neighbour"), "findings neighbour", 2},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP phivault_detect_lag Trail entries and ingested records the detector has not processed yet.
# TYPE phivault_detect_lag gauge
phivault_detect_lag 7
`), "phivault_detect_lag"); err != nil {
		t.Error(err)
	}
	if got := counterValue(t, reg, "phivault_detect_deliveries_total", "rec", "sent"); got != 2 {
		t.Errorf("deliveries sent = %v, want 2", got)
	}
	// Labels are rule, severity, notifier and outcome only.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !slices.Contains([]string{"rule", "severity", "notifier", "outcome"}, l.GetName()) {
					t.Errorf("%s has label %s", mf.GetName(), l.GetName())
				}
				if v := l.GetValue(); strings.HasPrefix(v, "u") && len(v) == 2 || strings.HasPrefix(v, "p") && len(v) == 2 {
					t.Errorf("%s has a user or patient id as a label value: %s", mf.GetName(), v)
				}
			}
		}
	}
}

// counterValue returns the value of counter name with labels (in
// label-name order), or 0 if there is none.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			if slices.Equal(vals, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A slow notifier never slows the pipeline: OnCommit returns at once,
// and batches beyond the queue are dropped and counted.
func TestDispatcher_NonBlocking(t *testing.T) {
	slow := &notifyRecorder{block: make(chan struct{})}
	fast := &notifyRecorder{}
	reg := prometheus.NewRegistry()
	m, _ := detect.NewMetrics(reg, nil)
	d := detect.NewDispatcher()
	d.Notifiers = map[string]detect.Notifier{"slow": slow, "fast": fast}
	d.Queue = 2
	d.Metrics = m
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The slow notifier is stuck until after these commits: if OnCommit
	// waited for it, the test would never get past them.
	for i := range 20 {
		d.OnCommit([]*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p"+string(rune('a'+i)))})
	}
	close(slow.block)
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(slow.sent()); n < 1 || n > 3 {
		t.Errorf("slow notifier got %d alerts, want the queued few (1 to 3)", n)
	}
	dropped := counterValue(t, reg, "phivault_detect_deliveries_total", "slow", "dropped")
	if dropped+float64(len(slow.sent())) != 20 {
		t.Errorf("slow: %v dropped + %d sent, want 20", dropped, len(slow.sent()))
	}
	if n := len(fast.sent()); n+int(counterValue(t, reg, "phivault_detect_deliveries_total", "fast", "dropped")) != 20 {
		t.Errorf("fast notifier got %d alerts", n)
	}
}

// After a restart, the dispatcher learns stored alerts: merging into one
// does not page again, escalating it does.
func TestDispatcher_Restart(t *testing.T) {
	store := detect.NewMemStore()
	a := notifyAlert("family", "u1", detect.SeverityMedium, "p1")
	if err := store.Commit(t.Context(), &detect.Commit{Alerts: []*detect.Alert{a}}); err != nil {
		t.Fatal(err)
	}
	rec := &notifyRecorder{}
	d := detect.NewDispatcher()
	d.Notifiers["rec"] = rec
	d.Store = store
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	again := *a
	again.Events++
	d.OnCommit([]*detect.Alert{&again})
	up := again
	up.Severity = detect.SeverityHigh
	d.OnCommit([]*detect.Alert{&up})
	d.Close(t.Context())
	if got, want := rec.sent(), []string{a.ID + "@high"}; !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}

func TestWebhook_Notify(t *testing.T) {
	secret := []byte("s3cret-shared-with-the-receiver")
	t.Run("RetryThenOK", func(t *testing.T) {
		var calls atomic.Int32
		var body []byte
		var sig string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			body, _ = io.ReadAll(r.Body)
			sig = r.Header.Get(detect.WebhookSignatureHeader)
		}))
		defer srv.Close()
		wh := &detect.Webhook{URL: srv.URL, Secret: secret, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
		a := notifyAlert("family", "u1", detect.SeverityHigh, "p1")
		if err := wh.Notify(t.Context(), []*detect.Alert{a}); err != nil {
			t.Fatalf("Notify = %v", err)
		}
		if calls.Load() != 3 {
			t.Errorf("calls = %d, want 3 (two failures, then success)", calls.Load())
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(sig), []byte(want)) {
			t.Errorf("signature %q, want %q", sig, want)
		}
		var got struct {
			Sent   time.Time   `json:"sent"`
			Alerts []alertJSON `json:"alerts"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Alerts) != 1 || got.Alerts[0].ID != a.ID || got.Alerts[0].Severity != "high" || got.Alerts[0].Explanation != a.Why || got.Sent.IsZero() {
			t.Errorf("body = %s", body)
		}
	})
	t.Run("ErrPermanent", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			http.Error(w, "no", http.StatusBadRequest)
		}))
		defer srv.Close()
		wh := &detect.Webhook{URL: srv.URL, Secret: secret, Backoff: time.Millisecond}
		if err := wh.Notify(t.Context(), []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1")}); err == nil {
			t.Error("Notify = nil after a 400, want an error")
		}
		if calls.Load() != 1 {
			t.Errorf("calls = %d after a 400, want 1 (not retried)", calls.Load())
		}
	})
	t.Run("ErrGiveUp", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}))
		defer srv.Close()
		wh := &detect.Webhook{URL: srv.URL + "/hook?token=abc", Secret: secret, Attempts: 3, Backoff: time.Millisecond}
		err := wh.Notify(t.Context(), []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1")})
		if err == nil || calls.Load() != 3 {
			t.Errorf("Notify = %v after %d calls, want an error after 3", err, calls.Load())
		}
	})
	t.Run("ErrNoSecret", func(t *testing.T) {
		wh := &detect.Webhook{URL: "http://127.0.0.1:1/"}
		if err := wh.Notify(t.Context(), []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1")}); err == nil {
			t.Error("Notify without a secret = nil, want an error")
		}
	})
}

func TestOCSF(t *testing.T) {
	var buf bytes.Buffer
	s := &detect.OCSFStream{W: &buf, Version: "1.2.3"}
	a := notifyAlert("family", "u1", detect.SeverityCritical, "p1", "p2")
	b := notifyAlert("neighbour", "u2", detect.SeverityLow, "p3")
	if err := s.Notify(t.Context(), []*detect.Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Notify(t.Context(), []*detect.Alert{a}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	type finding struct {
		ClassUID    int    `json:"class_uid"`
		CategoryUID int    `json:"category_uid"`
		ActivityID  int    `json:"activity_id"`
		TypeUID     int    `json:"type_uid"`
		SeverityID  int    `json:"severity_id"`
		RiskScore   int    `json:"risk_score"`
		Status      string `json:"status"`
		StartTime   int64  `json:"start_time"`
		FindingInfo struct {
			UID           string   `json:"uid"`
			Title         string   `json:"title"`
			Desc          string   `json:"desc"`
			Types         []string `json:"types"`
			FirstSeenTime int64    `json:"first_seen_time"`
			LastSeenTime  int64    `json:"last_seen_time"`
		} `json:"finding_info"`
		Resources []struct{ Type, UID string } `json:"resources"`
		Evidences []struct {
			Actor *struct {
				User struct{ UID string } `json:"user"`
			} `json:"actor"`
			Data struct{ Ref string } `json:"data"`
		} `json:"evidences"`
		Observables []struct {
			Name   string `json:"name"`
			TypeID int    `json:"type_id"`
			Value  string `json:"value"`
		} `json:"observables"`
		Metadata struct {
			Version string `json:"version"`
			Product struct {
				Name, Version string
			} `json:"product"`
		} `json:"metadata"`
	}
	var fs []finding
	for _, l := range lines {
		var f finding
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		fs = append(fs, f)
	}
	f := fs[0]
	if f.ClassUID != 2004 || f.CategoryUID != 2 || f.ActivityID != 1 || f.TypeUID != 200401 || f.SeverityID != 5 ||
		f.RiskScore != 70 || f.Status != "New" || f.StartTime != a.First.UnixMilli() {
		t.Errorf("finding = %+v", f)
	}
	fi := f.FindingInfo
	if fi.UID != a.ID || fi.Title != "phivault detect: family" || fi.Desc != a.Why || !slices.Equal(fi.Types, []string{"family"}) ||
		fi.FirstSeenTime != a.First.UnixMilli() || fi.LastSeenTime != a.Last.UnixMilli() {
		t.Errorf("finding_info = %+v", fi)
	}
	if len(f.Resources) != 2 || f.Resources[1].UID != "p2" || f.Resources[1].Type != "Patient" {
		t.Errorf("resources = %+v", f.Resources)
	}
	if len(f.Evidences) != 2 || f.Evidences[0].Data.Ref != "trail/41" || f.Evidences[0].Actor == nil || f.Evidences[0].Actor.User.UID != "u1" {
		t.Errorf("evidences = %+v", f.Evidences)
	}
	if len(f.Observables) != 3 || f.Observables[1].TypeID != 10 || f.Observables[1].Value != "p1" {
		t.Errorf("observables = %+v", f.Observables)
	}
	if f.Metadata.Version != detect.OCSFVersion || f.Metadata.Product.Name != "phivault" || f.Metadata.Product.Version != "1.2.3" {
		t.Errorf("metadata = %+v", f.Metadata)
	}
	if fs[1].SeverityID != 2 || fs[1].FindingInfo.UID != b.ID {
		t.Errorf("second finding = %+v", fs[1])
	}
	if fs[2].ActivityID != 2 || fs[2].TypeUID != 200402 {
		t.Errorf("a finding sent again is activity %d, want 2 (Update)", fs[2].ActivityID)
	}
}

// parseCEF splits a CEF line into its 7 header fields and extensions,
// undoing the escapes.
func parseCEF(t *testing.T, line string) ([]string, map[string]string) {
	t.Helper()
	var header []string
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(header) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(header) != 7 {
		t.Fatalf("CEF line %q has %d header fields", line, len(header))
	}
	ext := map[string]string{}
	rest := line[i:]
	// keys are [A-Za-z0-9]+ followed by an unescaped '='
	var key string
	cur.Reset()
	flush := func() {
		if key != "" {
			ext[key] = strings.TrimSuffix(cur.String(), " ")
		}
	}
	for j := 0; j < len(rest); j++ {
		c := rest[j]
		if c == '\\' && j+1 < len(rest) {
			j++
			switch rest[j] {
			case 'n':
				cur.WriteByte('\n')
			case 'r':
				cur.WriteByte('\r')
			default:
				cur.WriteByte(rest[j])
			}
			continue
		}
		if c == '=' {
			s := cur.String()
			k := s[strings.LastIndexByte(s, ' ')+1:]
			cur.Reset()
			cur.WriteString(strings.TrimSuffix(s[:len(s)-len(k)], " "))
			flush()
			key = k
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	flush()
	return header, ext
}

type cefSink struct {
	mu    sync.Mutex
	fails int
	lines []string
}

func (s *cefSink) SendCEF(ctx context.Context, lines ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("connection reset")
	}
	s.lines = append(s.lines, lines...)
	return nil
}

func TestCEF(t *testing.T) {
	a := notifyAlert("family", "u1", detect.SeverityHigh, "p1", "p2")
	a.Why = `User u1 read patient p1: a=b \ c` + "\nsecond line"
	header, ext := parseCEF(t, detect.CEF(a, "1.0|beta"))
	if want := []string{"CEF:0", "phivault", "phivault-detect", "1.0|beta", "family", "Alert: family", "8"}; !slices.Equal(header, want) {
		t.Errorf("header = %q, want %q", header, want)
	}
	want := map[string]string{
		"externalId": a.ID, "suid": "u1", "msg": a.Why, "cs1": "family", "cs1Label": "rule", "cn1": "70",
		"cs2": "p1 p2", "cn2": "2", "cs3": "trail/41 trail/42", "cn3": "2", "cs4": "open", "cs5": "first access to this patient",
	}
	for k, v := range want {
		if ext[k] != v {
			t.Errorf("%s = %q, want %q", k, ext[k], v)
		}
	}
	if ext["rt"] == "" || ext["start"] == "" || ext["end"] == "" {
		t.Errorf("times missing: %v", ext)
	}

	sink := &cefSink{fails: 2}
	s := &detect.CEFStream{Sender: sink, Backoff: time.Millisecond}
	if err := s.Notify(t.Context(), []*detect.Alert{a, notifyAlert("neighbour", "u2", detect.SeverityLow, "p3")}); err != nil {
		t.Fatalf("Notify = %v after two failures, want retried to success", err)
	}
	if len(sink.lines) != 2 || !strings.HasPrefix(sink.lines[1], "CEF:0|phivault|phivault-detect||neighbour|Alert: neighbour|3|") {
		t.Errorf("lines = %q", sink.lines)
	}
	if strings.ContainsAny(sink.lines[0], "\r\n") {
		t.Error("a CEF line holds a raw line break")
	}
}

// NewMetrics twice on one registry shares the counters.
func TestNewMetrics_Twice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := detect.NewMetrics(reg, func() int64 { return 1 }); err != nil {
		t.Fatal(err)
	}
	m, err := detect.NewMetrics(reg, func() int64 { return 2 })
	if err != nil {
		t.Fatalf("second NewMetrics = %v", err)
	}
	d := detect.NewDispatcher()
	d.Metrics = m
	d.Open(t.Context())
	d.OnCommit([]*detect.Alert{notifyAlert("family", "u1", detect.SeverityLow, "p1")})
	d.Close(t.Context())
	if got := counterValue(t, reg, "phivault_detect_alerts_total", "family", "low"); got != 1 {
		t.Errorf("alerts_total = %v, want 1", got)
	}
}

// Through a real pipeline: the first event of an alert pages, the second
// merges without paging, and an alert of a suppressed user and rule is
// stored but never paged.
func TestDispatcher_Pipeline(t *testing.T) {
	store := detect.NewMemStore()
	engine := detect.NewEngine(detect.NewDirectory(), []detect.Rule{reportRule{detect.SeverityHigh}}, func(id string) *detect.Alert {
		a, err := store.Alert(context.Background(), id)
		if err != nil {
			return nil
		}
		return a
	})
	p := detect.NewPipeline(store, engine)
	rec := &notifyRecorder{}
	d := detect.NewDispatcher()
	d.Notifiers["rec"] = rec
	d.Store = store
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.OnCommit = d.OnCommit
	if err := p.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	ev := func(user, patient string) detect.Record {
		return detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
			Stream: detect.StreamIngest, Time: alertsT0, System: "ehr", User: "ehr:" + user,
			Action: "read", Patients: []string{"ehr:" + patient}, OK: true,
		}}
	}
	step := func(recs ...detect.Record) {
		t.Helper()
		seq, err := store.Ingest(t.Context(), recs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			recs[i].Event.Seq = seq - int64(len(recs)-1-i)
		}
		if _, err := p.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	step(ev("u1", "p1"))
	step(ev("u1", "p1"))
	// Three dismissed alerts of ehr:u2 and test-rule (the user id as the
	// alert names it, namespaced) suppress the next.
	engine.Suppressor = detect.NewTriageSuppressor([]*detect.Triage{
		triage("x1", "ehr:u2", "test-rule", detect.StateFalsePositive),
		triage("x2", "ehr:u2", "test-rule", detect.StateBenign),
		triage("x3", "ehr:u2", "test-rule", detect.StateFalsePositive),
	})
	step(ev("u2", "p2"))
	d.Close(t.Context())
	want := []string{detect.AlertID("test-rule", "ehr:u1|ehr:p1") + "@high"}
	if got := rec.sent(); !slices.Equal(got, want) {
		t.Errorf("paged %v, want %v", got, want)
	}
	quiet, err := store.Alert(t.Context(), detect.AlertID("test-rule", "ehr:u2|ehr:p2"))
	if err != nil || !quiet.Suppressed {
		t.Errorf("suppressed alert stored as %+v (%v), want stored and suppressed", quiet, err)
	}
	if a, _ := store.Alert(t.Context(), want[0][:16]); a == nil || a.Events != 2 {
		t.Errorf("merged alert = %+v, want 2 events", a)
	}
}

// TestDispatcher_PageScore checks an alert scored below the paging
// threshold is not paged, and pages once its score reaches it.
func TestDispatcher_PageScore(t *testing.T) {
	rec := &notifyRecorder{}
	d := detect.NewDispatcher()
	if d.PageScore != detect.DefaultPageScore {
		t.Fatalf("PageScore %d, want DefaultPageScore %d", d.PageScore, detect.DefaultPageScore)
	}
	d.Notifiers["rec"] = rec
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	low := notifyAlert("new-source", "u1", detect.SeverityLow)
	low.Score = detect.DefaultPageScore - 1
	edge := notifyAlert("new-source", "u2", detect.SeverityLow)
	edge.Score = detect.DefaultPageScore
	d.OnCommit([]*detect.Alert{low, edge}) // edge pages, low does not
	again := *low
	again.Events = 3
	d.OnCommit([]*detect.Alert{&again}) // still below: no page
	up := again
	up.Score, up.Events = detect.DefaultPageScore+10, 4
	d.OnCommit([]*detect.Alert{&up}) // reached the threshold: pages once
	more := up
	more.Events = 5
	d.OnCommit([]*detect.Alert{&more}) // already paged: no page
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{edge.ID + "@low", low.ID + "@low"}
	if got := rec.sent(); !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}
