package access_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
)

// TestRestrict checks restrict-compartment as the access layer decides
// it: the care team loses the compartment (reads, searches, history,
// $everything, counts, writes), break-the-glass opens it for reading
// only, the patient keeps it and sees no restriction record, and Lift
// gives the compartment back.
func TestRestrict(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 2)
	p0, p1 := h.patients[0], h.patients[1]
	o0 := h.obs[p0][0]
	doc := staff("u-doc", h.doctor[p0], "physician")
	ctx := context.Background()

	read := func() error {
		c, _ := as(doc)
		_, err := h.rs.Read(c, "Observation", o0.ID)
		return err
	}
	search := func() int {
		c, _ := as(doc)
		res, err := h.rs.Search(c, &phivault.Query{Type: "Observation", Count: 1000, Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p0}}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Total
	}
	if err := read(); err != nil {
		t.Fatalf("care team read before the restriction: %v", err)
	}
	before := search()
	if before == 0 {
		t.Fatal("care team sees no Observation before the restriction")
	}

	if err := h.rs.Restrict(ctx, p0, "act-1"); err != nil {
		t.Fatal(err)
	}
	if err := h.rs.Restrict(ctx, p0, "act-1"); err != nil { // again: nothing more
		t.Fatal(err)
	}
	if r, err := h.rs.Restricted(ctx, p0); err != nil || !r {
		t.Fatalf("Restricted(p0) = %v, %v", r, err)
	}
	if r, err := h.rs.Restricted(ctx, p1); err != nil || r {
		t.Fatalf("Restricted(p1) = %v, %v; only p0 was restricted", r, err)
	}

	c, note := as(doc)
	_, err := h.rs.Read(c, "Observation", o0.ID)
	wantCode(t, "Read restricted", err, phivault.EFORBIDDEN)
	if d, _ := note.Decision(); d != "deny: forbid-restricted-compartment" {
		t.Fatalf("decision %q", d)
	}
	if n := search(); n != 0 {
		t.Fatalf("care team search finds %d in a restricted compartment", n)
	}
	c, _ = as(doc)
	cnt, err := h.rs.Search(c, &phivault.Query{Type: "Observation", Summary: "count", Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + p0}}}})
	if err != nil || cnt.Total != 0 {
		t.Fatalf("care team count = %+v, %v", cnt, err)
	}
	c, _ = as(doc)
	_, err = h.rs.Everything(c, p0, 100, 0)
	wantCode(t, "Everything restricted", err, phivault.EFORBIDDEN)
	c, _ = as(doc)
	_, err = h.rs.History(c, phivault.HistoryQuery{Type: "Observation", ID: o0.ID})
	wantCode(t, "History restricted", err, phivault.EFORBIDDEN)
	c, _ = as(doc)
	_, _, err = h.rs.Update(c, "Observation", o0.ID, o0.Body, phivault.UpdateOptions{})
	wantCode(t, "Update restricted", err, phivault.EFORBIDDEN)
	c, _ = as(system) // the bootstrap token's scopes are no way around it
	_, err = h.rs.Read(c, "Observation", o0.ID)
	if code := phivault.ErrorCode(err); code != phivault.ENOTFOUND && code != phivault.EFORBIDDEN {
		t.Fatalf("system client read of a restricted compartment: %v", err)
	}

	// The other patient's compartment is untouched.
	other := staff("u-doc1", h.doctor[p1], "physician")
	c, _ = as(other)
	if _, err := h.rs.Read(c, "Observation", h.obs[p1][0].ID); err != nil {
		t.Fatalf("unrestricted compartment: %v", err)
	}

	// The patient reads their own record, and finds no restriction.
	me := &phivault.Principal{ID: "u-pat", Kind: phivault.PrincipalPatient, PatientID: p0, SMART: true, Scopes: []string{"patient/*.rs"}}
	c, _ = as(me)
	if _, err := h.rs.Read(c, "Observation", o0.ID); err != nil {
		t.Fatalf("patient's own read: %v", err)
	}
	c, _ = as(me)
	ev, err := h.rs.Everything(c, p0, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = as(me)
	basics, err := h.rs.Search(c, &phivault.Query{Type: "Basic", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(ev.Matches, basics.Matches...) {
		if r.Type == "Basic" {
			t.Fatalf("the patient sees %s, a restriction record", r.Ref())
		}
	}
	if basics.Total != 0 {
		t.Fatalf("the patient's Basic search counts %d", basics.Total)
	}

	// Break-the-glass opens it for reading, and is recorded as such.
	c, _ = as(doc)
	if _, err := h.rs.BreakGlass(c, access.BreakGlassRequest{PatientID: p0, Purpose: "ETREAT", Reason: "arrest"}); err != nil {
		t.Fatal(err)
	}
	c, note = as(doc)
	if _, err := h.rs.Read(c, "Observation", o0.ID); err != nil {
		t.Fatalf("read with a grant: %v", err)
	}
	if _, glass := note.Decision(); !glass {
		t.Fatal("a read through the grant is not marked break-the-glass")
	}
	if n := search(); n != before {
		t.Fatalf("search with a grant finds %d, want %d", n, before)
	}
	c, _ = as(doc)
	_, _, err = h.rs.Update(c, "Observation", o0.ID, o0.Body, phivault.UpdateOptions{})
	wantCode(t, "Update with a grant", err, phivault.EFORBIDDEN)

	// Lifting another action's restriction leaves this one.
	*h.clock = h.clock.Add(2 * time.Hour) // the grant has expired
	if err := h.rs.Lift(ctx, p0, "act-2"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Read after lifting another action", read(), phivault.EFORBIDDEN)
	if err := h.rs.Lift(ctx, p0, "act-1"); err != nil {
		t.Fatal(err)
	}
	if err := read(); err != nil {
		t.Fatalf("read after Lift: %v", err)
	}
	if n := search(); n != before {
		t.Fatalf("search after Lift finds %d, want %d", n, before)
	}

	// A FHIR client cannot forge or remove a restriction record.
	c, _ = as(system)
	forged := `{"resourceType":"Basic","code":{"coding":[{"system":"` + access.ContainmentSystem + `","code":"restrict-compartment"}]},"subject":{"reference":"Patient/` + p1 + `"}}`
	_, _, err = h.rs.Create(c, "Basic", []byte(forged), phivault.CreateOptions{})
	wantCode(t, "Create a restriction record", err, phivault.EFORBIDDEN)
}

// TestRaiseDetailRecords checks that raised-detail records are stored,
// listed, idempotent per action, and lowered.
func TestRaiseDetailRecords(t *testing.T) {
	t.Parallel()
	h := mustHospital(t, 1)
	ctx := context.Background()
	until := now.Add(time.Hour)
	for _, w := range []access.Watch{{User: "u-a", Action: "act-a", Until: until}, {User: "u-b", Action: "act-b"}, {User: "u-a", Action: "act-a", Until: until}} {
		if err := h.rs.RaiseDetail(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := h.rs.Watches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []access.Watch{{User: "u-a", Action: "act-a", Until: until}, {User: "u-b", Action: "act-b"}}
	if !slices.Equal(ws, want) {
		t.Fatalf("Watches = %+v, want %+v", ws, want)
	}
	if err := h.rs.LowerDetail(ctx, "act-a"); err != nil {
		t.Fatal(err)
	}
	if ws, err = h.rs.Watches(ctx); err != nil || !slices.Equal(ws, want[1:]) {
		t.Fatalf("Watches after LowerDetail = %+v, %v", ws, err)
	}
	// Nobody reads them through FHIR but those who read the audit trail.
	c, _ := as(staff("u-doc", "", "physician"))
	res, err := h.rs.Search(c, &phivault.Query{Type: "Basic"})
	if err != nil || res.Total != 0 {
		t.Fatalf("a physician's Basic search = %+v, %v", res, err)
	}
}
