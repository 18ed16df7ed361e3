package access_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/policy"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/synth"
	"github.com/phivault/phivault/vault"
)

var now = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// memLog is an AuditLog that keeps entries in memory, for inspection.
type memLog struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
}

func (l *memLog) Append(_ context.Context, es ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, es...)
	return nil
}

func (l *memLog) byAction(a string) []*phivault.AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*phivault.AuditEntry
	for _, e := range l.entries {
		if e.Action == a {
			out = append(out, e)
		}
	}
	return out
}

// hospital is a vault loaded with generated patients, behind access.
type hospital struct {
	v        *vault.Service
	db       *sqlite.DB
	rs       *access.RecordService
	log      *memLog
	clock    *time.Time
	patients []string          // Patient ids
	doctor   map[string]string // patient id -> a Practitioner id of one of its Encounters
	obs      map[string][]*phivault.Resource
}

func mustHospital(tb testing.TB, n int) *hospital {
	tb.Helper()
	ctx := context.Background()
	v, db := vaulttest.Vault(tb)
	err := synth.Hospital(synth.Options{Seed: 7, Patients: n}, func(b []byte) bool {
		if _, err := v.Bundle(ctx, b, "https://example.test/fhir"); err != nil {
			tb.Fatal(err)
		}
		return true
	})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := policy.New(policy.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h := &hospital{v: v, db: db, log: &memLog{}, doctor: map[string]string{}, obs: map[string][]*phivault.Resource{}}
	clock := now
	h.clock = &clock
	h.rs = access.NewRecordService(v, a)
	h.rs.Now = func() time.Time { return *h.clock }
	h.rs.BuiltInPolicies = true // as serve sets it
	h.rs.Log = h.log
	pats, err := v.Search(ctx, &phivault.Query{Type: "Patient", Count: 1000, Params: []phivault.QueryParam{{Name: "_lastUpdated", Values: []string{"gt2000-01-01"}}}})
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range pats.Matches {
		h.patients = append(h.patients, p.ID)
		enc, err := v.Search(ctx, &phivault.Query{Type: "Encounter", Count: 1000, Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p.ID}}}})
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range enc.Matches {
			var m map[string]any
			json.Unmarshal(e.Body, &m)
			for _, part := range asMaps(m["participant"]) {
				ind, _ := part["individual"].(map[string]any)
				if ref, _ := ind["reference"].(string); strings.HasPrefix(ref, "Practitioner/") && h.doctor[p.ID] == "" {
					h.doctor[p.ID] = strings.TrimPrefix(ref, "Practitioner/")
				}
			}
		}
		obs, err := v.Search(ctx, &phivault.Query{Type: "Observation", Count: 1000, Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p.ID}}}})
		if err != nil {
			tb.Fatal(err)
		}
		h.obs[p.ID] = obs.Matches
	}
	if len(h.patients) != n {
		tb.Fatalf("loaded %d patients, want %d", len(h.patients), n)
	}
	return h
}

func asMaps(v any) []map[string]any {
	var out []map[string]any
	a, _ := v.([]any)
	for _, x := range a {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// as returns a context for principal p with a fresh audit note.
func as(p *phivault.Principal) (context.Context, *phivault.AuditNote) {
	note := &phivault.AuditNote{}
	ctx := phivault.WithRequestInfo(context.Background(), phivault.RequestInfo{ID: "req", Actor: p.ID, Note: note, Purpose: "TREAT"})
	return phivault.WithPrincipal(ctx, p), note
}

func staff(id, practitioner string, roles ...string) *phivault.Principal {
	return &phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, Roles: roles, PractitionerID: practitioner,
		Department: "dept-a", Organization: "org-a", TrainingValidUntil: now.Add(30 * 24 * time.Hour), AuthTime: now.Add(-time.Minute)}
}

var system = &phivault.Principal{ID: "admin", Kind: phivault.PrincipalSystem, Roles: []string{"bootstrap-admin"},
	Clearances: access.SensitiveLabels(), SMART: true, Scopes: []string{"system/*.cruds"}}

func wantCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if got := phivault.ErrorCode(err); got != code {
		tb.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// firstObs returns an Observation of patient p with the given category code.
func (h *hospital) firstObs(tb testing.TB, p, category string) *phivault.Resource {
	tb.Helper()
	for _, o := range h.obs[p] {
		if strings.Contains(string(o.Body), `"code":"`+category+`"`) {
			return o
		}
	}
	tb.Fatalf("patient has no %s Observation", category)
	return nil
}

func TestRecordService_Read(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 2)
	p0, p1 := h.patients[0], h.patients[1]
	o0 := h.obs[p0][0]
	doc := staff("u-doc", h.doctor[p0], "physician")

	t.Run("OK care relationship", func(t *testing.T) {
		ctx, note := as(doc)
		res, err := h.rs.Read(ctx, "Observation", o0.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res.ID != o0.ID {
			t.Fatalf("Read = %s, want %s", res.ID, o0.ID)
		}
		if d, glass := note.Decision(); d != "permit: clinical-read-care-team" || glass {
			t.Fatalf("note = %q glass=%v", d, glass)
		}
	})
	t.Run("ErrForbidden no relationship, break-glass possible", func(t *testing.T) {
		other := staff("u-other", "no-such-practitioner", "physician")
		ctx, note := as(other)
		_, err := h.rs.Read(ctx, "Observation", o0.ID)
		wantCode(t, "Read", err, phivault.EFORBIDDEN)
		if !strings.Contains(phivault.ErrorMessage(err), "break the glass") {
			t.Fatalf("message %q does not say how to break the glass", phivault.ErrorMessage(err))
		}
		if d, _ := note.Decision(); !strings.HasPrefix(d, "deny:") {
			t.Fatalf("note = %q", d)
		}
	})
	t.Run("ErrNotFound billing cannot see clinical data", func(t *testing.T) {
		ctx, _ := as(staff("u-bill", "", "billing"))
		_, err := h.rs.Read(ctx, "Observation", o0.ID)
		wantCode(t, "Read", err, phivault.ENOTFOUND)
		if phivault.ErrorMessage(err) != phivault.ErrorMessage(phivault.ErrNotFound) {
			t.Fatalf("hidden read says %q, unlike a missing resource", phivault.ErrorMessage(err))
		}
		_, missing := h.rs.Read(ctx, "Observation", "no-such-id")
		wantCode(t, "Read missing", missing, phivault.ENOTFOUND)
	})
	t.Run("ErrForbidden no principal", func(t *testing.T) {
		_, err := h.rs.Read(context.Background(), "Observation", o0.ID)
		wantCode(t, "Read", err, phivault.EFORBIDDEN)
	})
	t.Run("OK patient reads own compartment only", func(t *testing.T) {
		me := &phivault.Principal{ID: "u-pat", Kind: phivault.PrincipalPatient, PatientID: p0, SMART: true, Scopes: []string{"patient/*.rs"}}
		ctx, _ := as(me)
		if _, err := h.rs.Read(ctx, "Observation", o0.ID); err != nil {
			t.Fatal(err)
		}
		_, err := h.rs.Read(ctx, "Observation", h.obs[p1][0].ID)
		wantCode(t, "Read other patient", err, phivault.ENOTFOUND)
		res, err := h.rs.Search(ctx, &phivault.Query{Type: "Observation", Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p1}}}})
		if err != nil || res.Total != 0 || len(res.Matches) != 0 {
			t.Fatalf("Search other patient = %+v, %v; want nothing", res, err)
		}
		_, err = h.rs.Everything(ctx, p1, 0, 0)
		wantCode(t, "Everything other patient", err, phivault.ENOTFOUND)
		ev, err := h.rs.Everything(ctx, p0, 1000, 0)
		if err != nil || ev.Total == 0 {
			t.Fatalf("Everything own = %v, %v", ev, err)
		}
	})
	t.Run("OK shared resources", func(t *testing.T) {
		ctx, note := as(staff("u-bill", "", "billing"))
		if _, err := h.rs.Read(ctx, "Practitioner", h.doctor[p0]); err != nil {
			t.Fatal(err)
		}
		if d, _ := note.Decision(); d != "permit: shared-read" {
			t.Fatalf("note = %q", d)
		}
	})
	t.Run("ErrNotFound deleted resource stays hidden", func(t *testing.T) {
		ctx, _ := as(system)
		o := h.obs[p1][1]
		if err := h.rs.Delete(ctx, "Observation", o.ID); err != nil {
			t.Fatal(err)
		}
		_, err := h.rs.Read(ctx, "Observation", o.ID)
		wantCode(t, "Read deleted by admin", err, phivault.EGONE)
		bctx, _ := as(staff("u-bill", "", "billing"))
		_, err = h.rs.Read(bctx, "Observation", o.ID)
		wantCode(t, "Read deleted by billing", err, phivault.ENOTFOUND)
	})
}

func TestRecordService_Departments(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	admin, _ := as(system)
	pat, err := h.rs.Read(admin, "Patient", p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(pat.Body, &m)
	m["managingOrganization"] = map[string]any{"reference": "Organization/dept-a"}
	body, _ := json.Marshal(m)
	if _, _, err := h.rs.Update(admin, "Patient", p, body, phivault.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		who  *phivault.Principal
		typ  string
		id   string
		want string
	}{
		{"front desk of the department reads Patient", staff("fd-a", "", "front-desk"), "Patient", p, ""},
		{"front desk of another department", func() *phivault.Principal { s := staff("fd-b", "", "front-desk"); s.Department = "dept-b"; return s }(), "Patient", p, phivault.ENOTFOUND},
		{"front desk reads no Observation", staff("fd-a", "", "front-desk"), "Observation", h.obs[p][0].ID, phivault.ENOTFOUND},
		{"nurse of another department without care relationship", func() *phivault.Principal { s := staff("n-b", "nobody", "nurse"); s.Department = "dept-b"; return s }(), "Observation", h.obs[p][0].ID, phivault.EFORBIDDEN},
		{"nurse of another department on the care team", func() *phivault.Principal { s := staff("n-c", h.doctor[p], "nurse"); s.Department = "dept-b"; return s }(), "Observation", h.obs[p][0].ID, ""},
		{"security admin reads no clinical data", staff("sec", "", "security-admin"), "Observation", h.obs[p][0].ID, phivault.ENOTFOUND},
		{"expired training without grant", func() *phivault.Principal {
			s := staff("doc-x", h.doctor[p], "physician")
			s.TrainingValidUntil = now.Add(-time.Hour)
			return s
		}(), "Observation", h.obs[p][0].ID, phivault.EFORBIDDEN},
	}
	for _, tt := range tests {
		ctx, _ := as(tt.who)
		_, err := h.rs.Read(ctx, tt.typ, tt.id)
		if got := phivault.ErrorCode(err); got != tt.want {
			t.Errorf("%s: Read = %v (code %q), want code %q", tt.name, err, got, tt.want)
		}
	}
}

// putObservation writes a copy of o with extra meta.security labels and
// returns it.
func (h *hospital) labelled(tb testing.TB, o *phivault.Resource, labels ...string) *phivault.Resource {
	tb.Helper()
	var m map[string]any
	json.Unmarshal(o.Body, &m)
	delete(m, "id")
	var sec []any
	for _, l := range labels {
		sec = append(sec, map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": l})
	}
	m["meta"] = map[string]any{"security": sec}
	body, _ := json.Marshal(m)
	ctx, _ := as(system)
	res, _, err := h.rs.Create(ctx, "Observation", body, phivault.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func TestRecordService_Labels(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	sud := h.labelled(t, h.obs[p][0], "SUD")
	doc := staff("u-doc", h.doctor[p], "physician")
	ctx, _ := as(doc)
	_, err := h.rs.Read(ctx, "Observation", sud.ID)
	wantCode(t, "SUD without clearance", err, phivault.EFORBIDDEN)
	cleared := staff("u-doc2", h.doctor[p], "physician")
	cleared.Clearances = []string{"SUD"}
	cctx, _ := as(cleared)
	if _, err := h.rs.Read(cctx, "Observation", sud.ID); err != nil {
		t.Fatalf("SUD with clearance: %v", err)
	}

	// Search totals never count what the caller may not see.
	q := &phivault.Query{Type: "Observation", Count: 5, Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p}}}}
	all := len(h.obs[p]) + 1
	res, err := h.rs.Search(cctx, q)
	if err != nil || res.Total != all {
		t.Fatalf("cleared Search total = %v, %v; want %d", res, err, all)
	}
	res, err = h.rs.Search(ctx, q)
	if err != nil || res.Total != all-1 || len(res.Matches) != 5 {
		t.Fatalf("uncleared Search total = %+v, %v; want %d and a full page", res, err, all-1)
	}
	seen := 0
	for off := 0; off < res.Total; off += 5 {
		qq := *q
		qq.Offset = off
		page, err := h.rs.Search(ctx, &qq)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Matches {
			if m.ID == sud.ID {
				t.Fatal("search page holds the SUD Observation")
			}
			seen++
		}
	}
	if seen != all-1 {
		t.Fatalf("paged through %d matches, want %d", seen, all-1)
	}
	cq := *q
	cq.Summary = "count"
	if res, err := h.rs.Search(ctx, &cq); err != nil || res.Total != all-1 {
		t.Fatalf("_summary=count = %v, %v", res, err)
	}
	hist, err := h.rs.History(ctx, phivault.HistoryQuery{Type: "Observation", ID: sud.ID})
	if phivault.ErrorCode(err) != phivault.EFORBIDDEN {
		t.Fatalf("History of SUD = %v, %v; want forbidden", hist, err)
	}
	// VIP patient: every record needs the clearance.
	admin, _ := as(system)
	pat, _ := h.rs.Read(admin, "Patient", p)
	var m map[string]any
	json.Unmarshal(pat.Body, &m)
	m["meta"] = map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VIP"}}}
	body, _ := json.Marshal(m)
	if _, _, err := h.rs.Update(admin, "Patient", p, body, phivault.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = h.rs.Read(cctx, "Observation", h.obs[p][0].ID)
	wantCode(t, "VIP patient without clearance (cache invalidated by the update)", err, phivault.EFORBIDDEN)
}

func TestRecordService_Consent(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	doc := staff("u-doc", h.doctor[p], "physician")
	ctx, _ := as(doc)
	o := h.obs[p][0]
	if _, err := h.rs.Read(ctx, "Observation", o.ID); err != nil {
		t.Fatal(err)
	}
	consent := fmt.Sprintf(`{"resourceType":"Consent","status":"active",
	  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	  "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	  "patient":{"reference":"Patient/%s"},
	  "policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},
	  "provision":{"type":"permit","provision":[
	    {"type":"deny","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/%s"}}]},
	    {"type":"deny","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HMARKT"}]}]}}`, p, h.doctor[p])
	admin, _ := as(system)
	if _, _, err := h.rs.Create(admin, "Consent", []byte(consent), phivault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := h.rs.Read(ctx, "Observation", o.ID)
	wantCode(t, "Read after Consent deny", err, phivault.EFORBIDDEN)
	// Another physician on the care team, with an explicit assignment,
	// is not named by the Consent.
	team := fmt.Sprintf(`{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/%s"},
	  "participant":[{"member":{"identifier":{"system":%q,"value":"u-assigned"}}}]}`, p, access.PrincipalSystem)
	if _, _, err := h.rs.Create(admin, "CareTeam", []byte(team), phivault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	actx, _ := as(staff("u-assigned", "", "physician"))
	if _, err := h.rs.Read(actx, "Observation", o.ID); err != nil {
		t.Fatalf("assigned physician: %v", err)
	}
	// A purpose the Consent denies.
	actx2, _ := as(staff("u-assigned", "", "physician"))
	info, _ := phivault.RequestInfoFromContext(actx2)
	info.Purpose = "HMARKT"
	actx2 = phivault.WithRequestInfo(actx2, info)
	_, err = h.rs.Read(actx2, "Observation", o.ID)
	wantCode(t, "Read for a denied purpose", err, phivault.EFORBIDDEN)
}

func TestRecordService_BreakGlass(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 2)
	p := h.patients[0]
	o := h.obs[p][0]
	er := staff("u-er", "not-on-team", "physician")
	ctx, _ := as(er)
	_, err := h.rs.Read(ctx, "Observation", o.ID)
	wantCode(t, "Read before", err, phivault.EFORBIDDEN)

	reason := "Unconscious patient Jane Roe in ER bay 3"
	var logs bytes.Buffer
	h.rs.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	stale := *er
	stale.AuthTime = now.Add(-6 * time.Minute)
	sctx, _ := as(&stale)
	_, err = h.rs.BreakGlass(sctx, access.BreakGlassRequest{PatientID: p, Purpose: "ETREAT", Reason: reason})
	wantCode(t, "BreakGlass with stale login", err, phivault.EUNAUTHORIZED)
	_, err = h.rs.BreakGlass(ctx, access.BreakGlassRequest{PatientID: p, Purpose: "TREAT", Reason: reason})
	wantCode(t, "BreakGlass for TREAT", err, phivault.EINVALID)
	_, err = h.rs.BreakGlass(ctx, access.BreakGlassRequest{PatientID: p, Purpose: "ETREAT"})
	wantCode(t, "BreakGlass without reason", err, phivault.EINVALID)
	bctx, _ := as(staff("u-bill", "", "billing"))
	_, err = h.rs.BreakGlass(bctx, access.BreakGlassRequest{PatientID: p, Purpose: "ETREAT", Reason: reason})
	wantCode(t, "BreakGlass by billing", err, phivault.EFORBIDDEN)

	g, err := h.rs.BreakGlass(ctx, access.BreakGlassRequest{PatientID: p, Purpose: "ETREAT", Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Until.Equal(now.Add(access.DefaultBreakGlassTTL)) {
		t.Fatalf("grant until %v", g.Until)
	}
	// One warning per grant opened, with ids and without the reason.
	if n := strings.Count(logs.String(), "break-the-glass opened"); n != 1 || !strings.Contains(logs.String(), g.Record) ||
		strings.Contains(logs.String(), "Jane Roe") {
		t.Fatalf("%d break-the-glass warnings: %s", n, logs.String())
	}
	rctx, note := as(er)
	if _, err := h.rs.Read(rctx, "Observation", o.ID); err != nil {
		t.Fatalf("Read with grant: %v", err)
	}
	if d, glass := note.Decision(); !glass || !strings.Contains(d, "break-glass-access") {
		t.Fatalf("note = %q glass=%v, want a flagged break-glass access", d, glass)
	}
	// Another patient stays closed.
	other := h.obs[h.patients[1]][0]
	_, err = h.rs.Read(rctx, "Observation", other.ID)
	wantCode(t, "Read of another patient with the grant", err, phivault.EFORBIDDEN)
	entries := h.log.byAction(phivault.ActionBreakGlass)
	// Invalid requests are refused before they are attempts; the stale
	// login and the billing clerk are recorded.
	if len(entries) != 3 {
		t.Fatalf("%d break-glass audit entries, want 3 (2 refused, 1 granted)", len(entries))
	}
	if entries[0].Outcome != phivault.EUNAUTHORIZED || entries[1].Outcome != phivault.EFORBIDDEN {
		t.Fatalf("refused entries = %+v, %+v", entries[0], entries[1])
	}
	last := entries[2]
	if last.Outcome != "ok" || last.Actor != "u-er" || last.TargetID != p || !strings.Contains(last.Decision, g.Record) {
		t.Fatalf("break-glass entry = %+v", last)
	}
	for _, e := range h.log.entries {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "Jane Roe") || strings.Contains(string(b), "Unconscious") {
			t.Fatalf("audit entry holds the reason text: %s", b)
		}
	}
	// The record is hidden from clinicians, even with the grant.
	_, err = h.rs.Read(rctx, "Basic", strings.TrimPrefix(g.Record, "Basic/"))
	wantCode(t, "Read the record", err, phivault.ENOTFOUND)

	// The grant ends.
	*h.clock = now.Add(access.DefaultBreakGlassTTL + time.Second)
	later := *er
	later.AuthTime = *h.clock
	lctx, _ := as(&later)
	_, err = h.rs.Read(lctx, "Observation", o.ID)
	wantCode(t, "Read after the grant", err, phivault.EFORBIDDEN)

	// Review queue.
	_, err = h.rs.BreakGlassQueue(lctx)
	wantCode(t, "queue by a physician", err, phivault.EFORBIDDEN)
	po, _ := as(staff("u-privacy", "", "privacy-officer"))
	q, err := h.rs.BreakGlassQueue(po)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Record != g.Record || q[0].Principal != "u-er" || q[0].Reason != reason || q[0].PatientID != p || q[0].Reviewed {
		t.Fatalf("queue = %+v", q)
	}
	_, err = h.rs.Review(po, access.ReviewRequest{Record: g.Record, Verdict: "fine"})
	wantCode(t, "Review with a bad verdict", err, phivault.EINVALID)
	rv, err := h.rs.Review(po, access.ReviewRequest{Record: g.Record, Verdict: "appropriate", Comment: "confirmed with ER lead"})
	if err != nil {
		t.Fatal(err)
	}
	if !rv.Reviewed || rv.Reviewer != "u-privacy" || rv.Verdict != "appropriate" {
		t.Fatalf("review = %+v", rv)
	}
	if q, err := h.rs.BreakGlassQueue(po); err != nil || len(q) != 0 {
		t.Fatalf("queue after review = %+v, %v", q, err)
	}
	_, err = h.rs.Review(po, access.ReviewRequest{Record: g.Record, Verdict: "appropriate"})
	wantCode(t, "second review", err, phivault.ECONFLICT)
	if rs := h.log.byAction(phivault.ActionReview); len(rs) != 1 || rs[0].Actor != "u-privacy" || rs[0].Compartments[0] != p {
		t.Fatalf("review entries = %+v", rs)
	}
}

func TestRecordService_TrainingExpired(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	doc := staff("u-doc", h.doctor[p], "physician")
	doc.TrainingValidUntil = now.Add(-time.Hour)
	ctx, _ := as(doc)
	_, err := h.rs.Read(ctx, "Observation", h.obs[p][0].ID)
	wantCode(t, "Read with expired training", err, phivault.EFORBIDDEN)
	if _, err := h.rs.BreakGlass(ctx, access.BreakGlassRequest{PatientID: p, Purpose: "BTG", Reason: "code blue"}); err != nil {
		t.Fatalf("BreakGlass with expired training: %v", err)
	}
	if _, err := h.rs.Read(ctx, "Observation", h.obs[p][0].ID); err != nil {
		t.Fatalf("Read with grant: %v", err)
	}
	_, _, err = h.rs.Create(ctx, "Observation", h.obs[p][0].Body, phivault.CreateOptions{})
	wantCode(t, "Create with expired training", err, phivault.EFORBIDDEN)
}

type accounts map[string]*phivault.Account

func (a accounts) AccountByID(_ context.Context, id string) (*phivault.Account, error) {
	if acc, ok := a[id]; ok {
		return acc, nil
	}
	return nil, phivault.ErrNotFound
}

func TestRecordService_Suspended(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	h.rs.Accounts = accounts{"u-doc": {ID: "u-doc", Status: phivault.AccountSuspended}}
	ctx, _ := as(staff("u-doc", h.doctor[p], "physician"))
	_, err := h.rs.Read(ctx, "Observation", h.obs[p][0].ID)
	if code := phivault.ErrorCode(err); code != phivault.ENOTFOUND {
		t.Fatalf("suspended Read = %v", err)
	}
	_, err = h.rs.BreakGlass(ctx, access.BreakGlassRequest{PatientID: p, Purpose: "BTG", Reason: "x"})
	wantCode(t, "suspended BreakGlass", err, phivault.EFORBIDDEN)
}

func TestRecordService_SMART(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	vital, lab := h.firstObs(t, p, "vital-signs"), h.firstObs(t, p, "laboratory")
	doc := staff("u-doc", h.doctor[p], "physician")
	doc.SMART, doc.Scopes = true, []string{"openid", "fhirUser", "user/Observation.rs?category=vital-signs"}
	ctx, _ := as(doc)
	if _, err := h.rs.Read(ctx, "Observation", vital.ID); err != nil {
		t.Fatalf("vital sign: %v", err)
	}
	_, err := h.rs.Read(ctx, "Observation", lab.ID)
	wantCode(t, "lab with a vital-signs scope", err, phivault.ENOTFOUND)
	_, err = h.rs.Search(ctx, &phivault.Query{Type: "Condition", Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p}}}})
	wantCode(t, "Condition search", err, phivault.EFORBIDDEN)
	res, err := h.rs.Search(ctx, &phivault.Query{Type: "Observation", Count: 1000, Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Matches {
		obj, _ := fhir.Decode(m.Body)
		if !fhir.Match("Observation", phivault.QueryParam{Name: "category", Values: []string{"vital-signs"}}, obj) {
			t.Fatalf("search returned a non-vital-sign Observation %s", m.ID)
		}
	}
	if res.Total == 0 || res.Total >= len(h.obs[p]) {
		t.Fatalf("granular search total %d of %d", res.Total, len(h.obs[p]))
	}
	_, _, err = h.rs.Create(ctx, "Observation", vital.Body, phivault.CreateOptions{})
	wantCode(t, "Create with a read scope", err, phivault.EFORBIDDEN)

	// A clinician on a SMART token breaks the glass like anyone else;
	// the grant is still bounded by the token's scopes.
	er := staff("u-er", "nobody", "physician")
	er.SMART, er.Scopes = true, []string{"openid", "user/Observation.rs"}
	ectx, _ := as(er)
	_, err = h.rs.Read(ectx, "Observation", lab.ID)
	wantCode(t, "SMART physician without relationship", err, phivault.EFORBIDDEN)
	if _, err := h.rs.BreakGlass(ectx, access.BreakGlassRequest{PatientID: p, Purpose: "ETREAT", Reason: "arrest"}); err != nil {
		t.Fatalf("BreakGlass on a SMART token: %v", err)
	}
	if _, err := h.rs.Read(ectx, "Observation", lab.ID); err != nil {
		t.Fatalf("Read under the grant: %v", err)
	}
	_, err = h.rs.Read(ectx, "Patient", p)
	wantCode(t, "Patient under the grant, outside the scopes", err, phivault.ENOTFOUND)

	pat := &phivault.Principal{ID: "u-pat", Kind: phivault.PrincipalPatient, PatientID: p, SMART: true, Scopes: []string{"patient/Observation.r"}}
	pctx, _ := as(pat)
	if _, err := h.rs.Read(pctx, "Observation", lab.ID); err != nil {
		t.Fatal(err)
	}
	_, err = h.rs.Read(pctx, "Patient", p)
	wantCode(t, "Patient read with an Observation scope", err, phivault.ENOTFOUND)
	bad := &phivault.Principal{ID: "u-bad", Kind: phivault.PrincipalStaff, SMART: true, Scopes: []string{"user/Nope.rs"}}
	bctx, _ := as(bad)
	_, err = h.rs.Read(bctx, "Observation", lab.ID)
	wantCode(t, "invalid scopes", err, phivault.EFORBIDDEN)
}

func TestRecordService_Bundle(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	doc := staff("u-doc", h.doctor[p], "physician")
	ctx, _ := as(doc)
	get := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/%s"}}]}`, h.obs[p][0].ID)
	// Reads in a Bundle answer what the caller may see, like reads.
	for _, tt := range []struct {
		who    *phivault.Principal
		status string
	}{{doc, "200 OK"}, {staff("u-stranger", "nobody", "physician"), "403 Forbidden"}, {staff("u-bill", "", "billing"), "404 Not Found"}} {
		wctx, _ := as(tt.who)
		res, err := h.rs.Bundle(wctx, []byte(get), "")
		if err != nil {
			t.Fatalf("GET in a batch by %s: %v", tt.who.ID, err)
		}
		var out struct {
			Entry []struct{ Response struct{ Status string } }
		}
		if err := json.Unmarshal(res.Body, &out); err != nil || len(out.Entry) != 1 || out.Entry[0].Response.Status != tt.status {
			t.Errorf("GET in a batch by %s = %s, want status %s", tt.who.ID, res.Body, tt.status)
		}
	}

	obs := strings.Replace(string(h.obs[p][0].Body), `"id":"`+h.obs[p][0].ID+`"`, `"id":"x"`, 1)
	var m map[string]any
	json.Unmarshal([]byte(obs), &m)
	delete(m, "id")
	delete(m, "meta")
	post := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"request": map[string]any{"method": "POST", "url": "Observation"}, "resource": m}}}
	body, _ := json.Marshal(post)
	if _, err := h.rs.Bundle(ctx, body, ""); err != nil {
		t.Fatalf("care-team physician POSTs an Observation: %v", err)
	}
	bctx, _ := as(staff("u-bill", "", "billing"))
	_, err := h.rs.Bundle(bctx, body, "")
	wantCode(t, "billing POSTs an Observation", err, phivault.EFORBIDDEN)

	// A new patient and its records in one transaction: system clients.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","request":{"method":"POST","url":"Patient"},
	   "resource":{"resourceType":"Patient","name":[{"family":"Test"}]}},
	  {"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final",
	   "code":{"text":"x"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}}}]}`
	_, err = h.rs.Bundle(ctx, []byte(tx), "")
	wantCode(t, "physician creates a patient", err, phivault.EFORBIDDEN)
	admin, _ := as(system)
	if _, err := h.rs.Bundle(admin, []byte(tx), ""); err != nil {
		t.Fatalf("system client creates a patient: %v", err)
	}
}

func TestRecordService_Writes(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p0 := h.patients[0]
	doc := staff("u-doc", h.doctor[p0], "physician")
	ctx, _ := as(doc)
	o := h.obs[p0][0]
	res, _, err := h.rs.Update(ctx, "Observation", o.ID, o.Body, phivault.UpdateOptions{})
	if err != nil {
		t.Fatalf("update on the care team: %v", err)
	}
	// Moving the record to a patient the physician does not treat.
	admin, _ := as(system)
	stranger, _, err := h.rs.Create(admin, "Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Stranger"}]}`), phivault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(string(res.Body), "Patient/"+p0, "Patient/"+stranger.ID)
	_, _, err = h.rs.Update(ctx, "Observation", o.ID, []byte(moved), phivault.UpdateOptions{})
	wantCode(t, "update into another compartment", err, phivault.EFORBIDDEN)
	nurse := staff("u-nurse", h.doctor[p0], "nurse")
	nctx, _ := as(nurse)
	err = h.rs.Delete(nctx, "Observation", o.ID)
	wantCode(t, "nurse deletes", err, phivault.EFORBIDDEN)
	if err := h.rs.Delete(ctx, "Observation", o.ID); err != nil {
		t.Fatalf("physician deletes: %v", err)
	}
	other, _ := as(staff("u-other", "nobody", "physician"))
	err = h.rs.Delete(other, "Observation", h.obs[p0][1].ID)
	wantCode(t, "delete without relationship", err, phivault.EFORBIDDEN)
	bctx, _ := as(staff("u-bill", "", "billing"))
	err = h.rs.Delete(bctx, "Observation", h.obs[p0][1].ID)
	wantCode(t, "delete by billing", err, phivault.ENOTFOUND)
	_, _, err = h.rs.Create(ctx, "Basic", []byte(`{"resourceType":"Basic","code":{"coding":[{"system":"`+access.BreakGlassSystem+`","code":"reviewed"}]},"subject":{"reference":"Patient/`+p0+`"}}`), phivault.CreateOptions{})
	wantCode(t, "forging a break-glass record", err, phivault.EFORBIDDEN)
}

func TestExplain(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	p := h.patients[0]
	h.rs.Accounts = accounts{
		"u-doc": {ID: "u-doc", Status: phivault.AccountActive, Roles: []string{"physician"}, PractitionerID: h.doctor[p], TrainingValidUntil: now.Add(time.Hour)},
		"u-fd":  {ID: "u-fd", Status: phivault.AccountActive, Roles: []string{"front-desk"}, TrainingValidUntil: now.Add(time.Hour)},
		"u-sec": {ID: "u-sec", Status: phivault.AccountActive, Roles: []string{"security-admin"}, TrainingValidUntil: now.Add(time.Hour)},
	}
	sec, _ := as(staff("u-sec", "", "security-admin"))
	ex, err := h.rs.Explain(sec, access.ExplainRequest{User: "u-doc", Action: "read", Resource: "Observation/" + h.obs[p][0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Decision != "permit" || !slices.Equal(ex.Policies, []string{"clinical-read-care-team"}) || !ex.CareRelationship || ex.Patient != p {
		t.Fatalf("explain = %+v", ex)
	}
	ex, err = h.rs.Explain(sec, access.ExplainRequest{User: "u-fd", Action: "read", Resource: "Observation/" + h.obs[p][0].ID})
	if err != nil || ex.Decision != "deny" {
		t.Fatalf("explain front desk = %+v, %v", ex, err)
	}
	docctx, _ := as(staff("u-doc", h.doctor[p], "physician"))
	_, err = h.rs.Explain(docctx, access.ExplainRequest{User: "u-fd", Action: "read", Resource: "Observation/" + h.obs[p][0].ID})
	wantCode(t, "explain by a physician", err, phivault.EFORBIDDEN)
	boot, _ := as(system)
	if _, err := h.rs.Explain(boot, access.ExplainRequest{User: "u-fd", Action: "read", Resource: "Observation/" + h.obs[p][0].ID}); err != nil {
		t.Fatalf("explain by the bootstrap admin: %v", err)
	}
}
