package policy_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/policy"
)

// scopeGrant is the meaning of one SMART scope in the test vocabulary.
type scopeGrant struct{ prefix, typ, letters string }

var scopeMeaning = map[string]scopeGrant{
	"patient/*.rs":                      {"patient/", "*", "rs"},
	"patient/Observation.r":             {"patient/", "Observation", "r"},
	"user/*.cruds":                      {"user/", "*", "cruds"},
	"system/*.read":                     {"system/", "*", "rs"},
	"system/Observation.s":              {"system/", "Observation", "s"},
	"patient/Observation.rs?category=x": {}, // granular scopes grant nothing without a body
}

var letterOf = map[policy.Action]string{policy.Create: "c", policy.Read: "r", policy.History: "r", policy.Update: "u", policy.Delete: "d", policy.Search: "s"}

func modelScope(r policy.Request) bool {
	prefix := map[string]string{policy.KindStaff: "user/", policy.KindPatient: "patient/", policy.KindSystem: "system/"}[r.Principal.Kind]
	l, ok := letterOf[r.Action]
	if !ok {
		return false
	}
	for _, s := range r.Context.Scopes {
		g := scopeMeaning[s]
		if g.prefix == prefix && (g.typ == "*" || g.typ == r.Resource.Type) && strings.Contains(g.letters, l) {
			return true
		}
	}
	return false
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// model is the reference statement of the default rules in plain Go.
func model(r policy.Request) bool {
	p, c, res, pat := r.Principal, r.Context, r.Resource, r.Patient
	now := c.Time.Unix()
	a := r.Action
	if p.Suspended {
		return false
	}
	readish := a == policy.Read || a == policy.Search || a == policy.History
	inCompartment := res.Category == policy.CategoryPatient
	role := func(x string) bool { return p.Kind == policy.KindStaff && slices.Contains(p.Roles, x) }
	clinician := role("physician") || role("nurse")
	btg := c.BreakGlass != nil && c.BreakGlass.PatientID == pat.ID && c.BreakGlass.Reason != "" && now < c.BreakGlass.Until.Unix()
	self := p.Kind == policy.KindPatient && pat.ID == p.PatientID
	scope := modelScope(r)
	if _, fhirAction := letterOf[a]; c.SMART && !scope && fhirAction {
		return false
	}
	exempt := a == policy.BreakGlass || (readish && btg)
	if p.Kind == policy.KindStaff && p.TrainingValidUntil.Unix() < now && !exempt {
		return false
	}
	if inCompartment && !(subset(res.Labels, p.Clearances) && subset(pat.Labels, p.Clearances)) && !self && !exempt {
		return false
	}
	if inCompartment && pat.Restricted && !self && !exempt {
		return false // restrict-compartment: break-the-glass only
	}
	denied := slices.Contains(pat.Consent.Actors, p.ID) || slices.Contains(pat.Consent.Organizations, p.Organization) || slices.Contains(pat.Consent.Purposes, c.Purpose)
	if inCompartment && denied && !self && !exempt {
		return false
	}
	care := slices.Contains(pat.CareTeam, p.ID)
	// A patient with no department is in nobody's: an account without
	// one matches none.
	sameDept := p.Department != "" && pat.Department == p.Department
	switch {
	case inCompartment && clinician && care && (readish || a == policy.Create || a == policy.Update):
		return true
	case inCompartment && role("physician") && care && a == policy.Delete:
		return true
	case inCompartment && role("front-desk") && sameDept && (res.Type == "Patient" || res.Type == "Appointment") &&
		(a == policy.Read || a == policy.Search || a == policy.Create || a == policy.Update):
		return true
	case inCompartment && role("billing") && sameDept && slices.Contains([]string{"Patient", "Coverage", "Claim", "ExplanationOfBenefit", "Account", "Invoice"}, res.Type) &&
		(a == policy.Read || a == policy.Search):
		return true
	case res.Category == policy.CategoryAudit && role("privacy-officer") && a == policy.ReadAudit:
		return true
	case res.Category == policy.CategoryAdmin && role("security-admin") && (a == policy.ManageUsers || a == policy.ManageKeys || a == policy.ManagePolicies):
		return true
	case inCompartment && self && readish && scope:
		return true
	case inCompartment && p.Kind == policy.KindSystem && scope && (readish || a == policy.Create || a == policy.Update || a == policy.Delete):
		return true
	case p.Kind == policy.KindSystem && slices.Contains(p.Roles, "bootstrap-admin") && (res.Category == policy.CategoryAudit || res.Category == policy.CategoryAdmin) &&
		(a == policy.ReadAudit || a == policy.ManageUsers || a == policy.ManageKeys || a == policy.ManagePolicies):
		return true
	case res.Category == policy.CategoryShared && readish && (p.Kind == policy.KindStaff || scope):
		return true
	case res.Category == policy.CategoryShared && p.Kind == policy.KindSystem && scope && (a == policy.Create || a == policy.Update || a == policy.Delete):
		return true
	case inCompartment && clinician && a == policy.BreakGlass && (c.Purpose == "ETREAT" || c.Purpose == "BTG") &&
		c.BreakGlassWhy != "" && p.AuthTime.Unix() <= now && now-p.AuthTime.Unix() <= 300:
		return true
	case inCompartment && clinician && readish && btg:
		return true
	}
	return false
}

var (
	allActions = []policy.Action{policy.Read, policy.Search, policy.History, policy.Create, policy.Update, policy.Delete,
		policy.BreakGlass, policy.ReadAudit, policy.ManageUsers, policy.ManageKeys, policy.ManagePolicies}
	allRoles = []string{"physician", "nurse", "front-desk", "billing", "privacy-officer", "security-admin", "bootstrap-admin"}
	allKinds = []string{"Observation", "Patient", "Claim", "Appointment"}
	allLabel = []string{"R", "V", "PSY", "SUD", "HIV", "ETH", "VIP"}
)

type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func check(t fataler, a *policy.Authorizer, r policy.Request) {
	t.Helper()
	d, err := a.Decide(context.Background(), r)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if len(d.Errors) > 0 {
		t.Fatalf("evaluation errors: %v", d.Errors)
	}
	if want := model(r); d.Allow != want {
		t.Fatalf("Cedar says allow=%v (policies %v), model says %v for %s", d.Allow, d.Policies, want, describe(r))
	}
	if d.Allow && len(d.Policies) == 0 {
		t.Fatalf("allow without a determining policy: %s", describe(r))
	}
}

func describe(r policy.Request) string {
	return fmt.Sprintf("%+v", r)
}

// TestMatrix runs roles × resource kinds × care relationship × labels ×
// consent deny × break-the-glass × training × suspension against the model,
// and pins a few outcomes by hand.
func TestMatrix(t *testing.T) {
	// Without the memo: every cell is decided by Cedar (TestProperty runs
	// with it).
	a, err := policy.New(policy.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	n, allowed, cell, step := 0, 0, 0, testenv.SampleStep()
	principals := []policy.Principal{}
	for _, role := range allRoles[:6] { // bootstrap-admin is a system role
		principals = append(principals, policy.Principal{ID: "u-" + role, Kind: policy.KindStaff, Roles: []string{role}, Department: "cardio", Organization: "org1"})
	}
	principals = append(principals,
		policy.Principal{ID: "pat", Kind: policy.KindPatient, PatientID: "p1"},
		policy.Principal{ID: "pat2", Kind: policy.KindPatient, PatientID: "p2"},
		policy.Principal{ID: "sys", Kind: policy.KindSystem},
		policy.Principal{ID: "boot", Kind: policy.KindSystem, Roles: []string{"bootstrap-admin"}})
	for _, base := range principals {
		for _, kind := range allKinds {
			for _, cat := range []string{policy.CategoryPatient, policy.CategoryAudit, policy.CategoryAdmin, policy.CategoryShared} {
				if cat != policy.CategoryPatient && kind != "Observation" {
					continue // kind matters only inside patient compartments
				}
				for _, care := range []bool{false, true} {
					for _, label := range []string{"", "PSY", "VIP-patient", "restricted"} {
						for _, consent := range []string{"", "actor", "org", "purpose"} {
							for _, btg := range []string{"", "active", "expired", "other"} {
								for _, training := range []bool{true, false} {
									for _, suspended := range []bool{false, true} {
										for _, smart := range []bool{false, true} {
											for _, act := range allActions {
												p := base
												p.Suspended = suspended
												p.AuthTime = t0.Add(-2 * time.Minute)
												if training {
													p.TrainingValidUntil = t0.Add(24 * time.Hour)
												} else {
													p.TrainingValidUntil = t0.Add(-time.Hour)
												}
												r := policy.Request{Principal: p, Action: act,
													Resource: policy.Resource{Type: kind, ID: "x", Category: cat},
													Patient:  policy.Patient{ID: "p1", Department: "cardio"},
													Context:  policy.Context{Time: t0, Purpose: "TREAT", BreakGlassWhy: "crash"}}
												if cat != policy.CategoryPatient {
													r.Patient = policy.Patient{}
												}
												if care {
													r.Patient.CareTeam = []string{p.ID}
												}
												switch label {
												case "PSY":
													r.Resource.Labels = []string{"PSY"}
												case "VIP-patient":
													r.Patient.Labels = []string{"VIP"}
												case "restricted":
													r.Patient.Restricted = true
												}
												switch consent {
												case "actor":
													r.Patient.Consent.Actors = []string{p.ID}
												case "org":
													r.Patient.Consent.Organizations = []string{"org1"}
												case "purpose":
													r.Patient.Consent.Purposes = []string{"TREAT"}
												}
												switch btg {
												case "active":
													r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: "p1", Reason: "crash", Until: t0.Add(time.Hour)}
												case "expired":
													r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: "p1", Reason: "crash", Until: t0.Add(-time.Second)}
												case "other":
													r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: "p9", Reason: "crash", Until: t0.Add(time.Hour)}
												}
												if smart {
													r.Context.SMART = true
													r.Context.Scopes = []string{"patient/*.rs", "user/*.cruds", "system/Observation.s"}
												} else if p.Kind != policy.KindStaff {
													r.Context.Scopes = []string{"patient/*.rs", "system/*.read"}
												}
												cell++
												if cell%step != 0 {
													continue
												}
												check(t, a, r)
												n++
												if model(r) {
													allowed++
												}
											}
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d matrix cells, %d allowed", n, allowed)
	if allowed == 0 || allowed == n {
		t.Fatal("degenerate matrix")
	}

	// Hand-pinned outcomes, independent of the model.
	phys := policy.Principal{ID: "doc", Kind: policy.KindStaff, Roles: []string{"physician"}, Department: "cardio",
		TrainingValidUntil: t0.Add(time.Hour), AuthTime: t0.Add(-time.Minute)}
	obs := policy.Resource{Type: "Observation", ID: "o", Category: policy.CategoryPatient}
	pat := policy.Patient{ID: "p1", CareTeam: []string{"doc"}, Department: "cardio"}
	cases := []struct {
		name string
		edit func(*policy.Request)
		want bool
	}{
		{"care team reads", func(*policy.Request) {}, true},
		{"no care relation", func(r *policy.Request) { r.Patient.CareTeam = nil }, false},
		{"PSY without clearance", func(r *policy.Request) { r.Resource.Labels = []string{"PSY"} }, false},
		{"PSY with clearance", func(r *policy.Request) {
			r.Resource.Labels = []string{"PSY"}
			r.Principal.Clearances = []string{"PSY"}
		}, true},
		{"consent denies actor", func(r *policy.Request) { r.Patient.Consent.Actors = []string{"doc"} }, false},
		{"suspended", func(r *policy.Request) { r.Principal.Suspended = true }, false},
		{"training expired", func(r *policy.Request) { r.Principal.TrainingValidUntil = t0.Add(-time.Second) }, false},
		{"training expired with break-glass", func(r *policy.Request) {
			r.Principal.TrainingValidUntil = t0.Add(-time.Second)
			r.Patient.CareTeam = nil
			r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: "p1", Reason: "arrest", Until: t0.Add(time.Hour)}
		}, true},
		{"break-glass with stale auth", func(r *policy.Request) {
			r.Action = policy.BreakGlass
			r.Context.Purpose, r.Context.BreakGlassWhy = "ETREAT", "arrest"
			r.Principal.AuthTime = t0.Add(-6 * time.Minute)
		}, false},
		{"break-glass with fresh auth", func(r *policy.Request) {
			r.Action = policy.BreakGlass
			r.Context.Purpose, r.Context.BreakGlassWhy = "ETREAT", "arrest"
		}, true},
		{"break-glass without reason", func(r *policy.Request) {
			r.Action = policy.BreakGlass
			r.Context.Purpose = "ETREAT"
		}, false},
		{"security admin reads clinical", func(r *policy.Request) { r.Principal.Roles = []string{"security-admin"} }, false},
		{"restricted: care team refused", func(r *policy.Request) { r.Patient.Restricted = true }, false},
		{"restricted: care team writes refused", func(r *policy.Request) { r.Patient.Restricted = true; r.Action = policy.Update }, false},
		{"restricted: break-glass grant reads", func(r *policy.Request) {
			r.Patient.Restricted = true
			r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: "p1", Reason: "arrest", Until: t0.Add(time.Hour)}
		}, true},
		{"restricted: break-glass grant does not write", func(r *policy.Request) {
			r.Patient.Restricted = true
			r.Action = policy.Update
			r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: "p1", Reason: "arrest", Until: t0.Add(time.Hour)}
		}, false},
		{"restricted: the glass may still be broken", func(r *policy.Request) {
			r.Patient.Restricted = true
			r.Action = policy.BreakGlass
			r.Context.Purpose, r.Context.BreakGlassWhy = "ETREAT", "arrest"
		}, true},
		{"restricted: the patient reads their own", func(r *policy.Request) {
			r.Patient.Restricted = true
			r.Principal = policy.Principal{ID: "pat", Kind: policy.KindPatient, PatientID: "p1"}
			r.Context.Scopes = []string{"patient/*.rs"}
		}, true},
		{"restricted: a system client refused", func(r *policy.Request) {
			r.Patient.Restricted = true
			r.Principal = policy.Principal{ID: "sys", Kind: policy.KindSystem}
			r.Context.SMART, r.Context.Scopes = true, []string{"system/*.cruds"}
		}, false},
	}
	for _, tc := range cases {
		r := policy.Request{Principal: phys, Action: policy.Read, Resource: obs, Patient: pat, Context: policy.Context{Time: t0, Purpose: "TREAT"}}
		r.Principal.Roles = slices.Clone(r.Principal.Roles)
		tc.edit(&r)
		d, err := a.Decide(context.Background(), r)
		if err != nil || d.Allow != tc.want {
			t.Errorf("%s: allow=%v (%v) err=%v, want %v", tc.name, d.Allow, d.Policies, err, tc.want)
		}
	}
}

// setChecks raises rapid's number of checks unless -rapid.checks or
// RAPID_CHECKS chose one.
func setChecks(t *testing.T, n int) {
	set := os.Getenv("RAPID_CHECKS") != ""
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	f := flag.Lookup("rapid.checks")
	if set || f == nil {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

func genStrings(t *rapid.T, name string, pool []string) []string {
	return rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, 3, rapid.ID[string]).Draw(t, name)
}

// TestProperty runs random principals, patients and requests against the model.
func TestProperty(t *testing.T) {
	a := newAuthorizer(t)
	users := []string{"u1", "u2", "u3", "u4"}
	depts := []string{"cardio", "onco", ""} // "": an account or patient without a department
	setChecks(t, 20000/testenv.SampleStep())
	rapid.Check(t, func(rt *rapid.T) {
		off := func(name string) time.Time {
			return t0.Add(time.Duration(rapid.IntRange(-7200, 7200).Draw(rt, name)) * time.Second)
		}
		kind := rapid.SampledFrom([]string{policy.KindStaff, policy.KindStaff, policy.KindStaff, policy.KindPatient, policy.KindSystem}).Draw(rt, "kind")
		p := policy.Principal{
			ID: rapid.SampledFrom(users).Draw(rt, "id"), Kind: kind,
			Roles:              genStrings(rt, "roles", allRoles),
			Department:         rapid.SampledFrom(depts).Draw(rt, "dept"),
			Organization:       rapid.SampledFrom([]string{"org1", "org2"}).Draw(rt, "org"),
			Clearances:         genStrings(rt, "clear", allLabel),
			TrainingValidUntil: off("training"),
			AuthTime:           off("auth"),
			Suspended:          rapid.IntRange(0, 9).Draw(rt, "susp") == 0,
		}
		if kind == policy.KindPatient {
			p.PatientID = rapid.SampledFrom([]string{"p1", "p2"}).Draw(rt, "own")
		}
		cat := rapid.SampledFrom([]string{policy.CategoryPatient, policy.CategoryPatient, policy.CategoryAudit, policy.CategoryAdmin, policy.CategoryShared}).Draw(rt, "cat")
		r := policy.Request{
			Principal: p,
			Action:    rapid.SampledFrom(allActions).Draw(rt, "action"),
			Resource: policy.Resource{Type: rapid.SampledFrom(allKinds).Draw(rt, "type"), ID: "r",
				Category: cat, Labels: genStrings(rt, "labels", allLabel[:3])},
			Context: policy.Context{
				Time:          t0,
				Purpose:       rapid.SampledFrom([]string{"TREAT", "ETREAT", "BTG", "HPAYMT"}).Draw(rt, "purpose"),
				BreakGlassWhy: rapid.SampledFrom([]string{"", "arrest"}).Draw(rt, "why"),
				SMART:         rapid.Bool().Draw(rt, "smart"),
				Scopes:        genStrings(rt, "scopes", []string{"patient/*.rs", "patient/Observation.r", "user/*.cruds", "system/*.read", "system/Observation.s", "patient/Observation.rs?category=x"}),
			},
		}
		if cat == policy.CategoryPatient {
			r.Patient = policy.Patient{
				ID: rapid.SampledFrom([]string{"p1", "p2"}).Draw(rt, "patient"), CareTeam: genStrings(rt, "care", users),
				Department: rapid.SampledFrom(depts).Draw(rt, "pdept"), Labels: genStrings(rt, "plabels", []string{"VIP", "HIV"}),
				Consent: policy.ConsentDeny{Actors: genStrings(rt, "dactors", users[:2]),
					Organizations: genStrings(rt, "dorgs", []string{"org2"}), Purposes: genStrings(rt, "dpurp", []string{"HPAYMT"})},
				Restricted: rapid.IntRange(0, 3).Draw(rt, "restricted") == 0,
			}
		}
		if rapid.Bool().Draw(rt, "btg") {
			r.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: rapid.SampledFrom([]string{"p1", "p2"}).Draw(rt, "btgp"),
				Reason: rapid.SampledFrom([]string{"", "arrest"}).Draw(rt, "btgr"), Until: off("btgu")}
		}
		check(rt, a, r)
	})
}

// BenchmarkDecide decides the same request again and again: after the
// first, the memo answers. BenchmarkDecideUncached measures Cedar itself.
func BenchmarkDecide(b *testing.B) { benchmarkDecide(b, policy.Options{}) }

// BenchmarkDecideUncached decides without the memo.
func BenchmarkDecideUncached(b *testing.B) { benchmarkDecide(b, policy.Options{CacheSize: -1}) }

func benchmarkDecide(b *testing.B, opts policy.Options) {
	a, err := policy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	r := policy.Request{
		Principal: policy.Principal{ID: "doc", Kind: policy.KindStaff, Roles: []string{"physician"}, Department: "cardio",
			Clearances: []string{"R"}, TrainingValidUntil: t0.Add(time.Hour), AuthTime: t0},
		Action:   policy.Read,
		Resource: policy.Resource{Type: "Observation", ID: "o", Category: policy.CategoryPatient, Labels: []string{"R"}},
		Patient: policy.Patient{ID: "p1", CareTeam: []string{"n1", "n2", "doc", "n3"}, Department: "cardio",
			Consent: policy.ConsentDeny{Purposes: []string{"HMARKT"}}},
		Context: policy.Context{Time: t0, Purpose: "TREAT"},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := a.Decide(ctx, r)
		if err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
}
