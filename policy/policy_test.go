package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/policy"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func newAuthorizer(t testing.TB) *policy.Authorizer {
	t.Helper()
	a, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDefaultSetLoadsAndDecides(t *testing.T) {
	a := newAuthorizer(t)
	req := policy.Request{
		Principal: policy.Principal{ID: "u1", Kind: policy.KindStaff, Roles: []string{"physician"},
			TrainingValidUntil: t0.Add(time.Hour), AuthTime: t0},
		Action:   policy.Read,
		Resource: policy.Resource{Type: "Observation", ID: "o1", Category: policy.CategoryPatient},
		Patient:  policy.Patient{ID: "p1", CareTeam: []string{"u1"}},
		Context:  policy.Context{Time: t0},
	}
	d, err := a.Decide(context.Background(), req)
	if err != nil || !d.Allow || len(d.Policies) != 1 || d.Policies[0] != "clinical-read-care-team" {
		t.Fatalf("care team read: %+v %v", d, err)
	}
	req.Patient.CareTeam = nil
	d, err = a.Decide(context.Background(), req)
	if err != nil || d.Allow || !d.BreakGlassPossible {
		t.Fatalf("no care relation: %+v %v", d, err)
	}
}

func TestReloadKeepsOldSetOnError(t *testing.T) {
	a := newAuthorizer(t)
	dir := t.TempDir()
	bad := `@id("bad") permit (principal, action, resource) when { principal.nosuch == "x" };`
	if err := os.WriteFile(filepath.Join(dir, "site.cedar"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	err := a.Reload(dir)
	if err == nil || !strings.Contains(err.Error(), "current policies stay in force") {
		t.Fatalf("Reload of an invalid set: %v", err)
	}
	req := policy.Request{
		Principal: policy.Principal{ID: "sa", Kind: policy.KindStaff, Roles: []string{"security-admin"}, TrainingValidUntil: t0.Add(time.Hour)},
		Action:    policy.ManageKeys,
		Resource:  policy.Resource{Type: "Key", ID: "k", Category: policy.CategoryAdmin},
		Context:   policy.Context{Time: t0},
	}
	if d, err := a.Decide(context.Background(), req); err != nil || !d.Allow {
		t.Fatalf("old set not kept: %+v %v", d, err)
	}
	good := `@id("only") permit (principal, action == Action::"readAudit", resource);`
	if err := os.WriteFile(filepath.Join(dir, "site.cedar"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(dir); err != nil {
		t.Fatal(err)
	}
	if d, err := a.Decide(context.Background(), req); err != nil || d.Allow {
		t.Fatalf("new set not in force: %+v %v", d, err)
	}
}

// TestMemoResourceEntities checks that a set whose policies name resource
// entities is decided per resource id, not from the memo.
func TestMemoResourceEntities(t *testing.T) {
	dir := t.TempDir()
	text := string(policy.DefaultPolicies()) + `
@id("hide-o2") forbid (principal, action, resource) when { resource == Resource::"Observation/o2" };`
	if err := os.WriteFile(filepath.Join(dir, "site.cedar"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := policy.New(policy.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	req := policy.Request{
		Principal: policy.Principal{ID: "u1", Kind: policy.KindStaff, Roles: []string{"physician"}, TrainingValidUntil: t0.Add(time.Hour)},
		Action:    policy.Read,
		Resource:  policy.Resource{Type: "Observation", ID: "o1", Category: policy.CategoryPatient},
		Patient:   policy.Patient{ID: "p1", CareTeam: []string{"u1"}},
		Context:   policy.Context{Time: t0},
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"o1", true}, {"o2", false}, {"o1", true}} {
		req.Resource.ID = tc.id
		d, err := a.Decide(context.Background(), req)
		if err != nil || d.Allow != tc.want {
			t.Fatalf("Decide(%s) = %+v, %v; want allow=%v", tc.id, d, err, tc.want)
		}
	}
}

// TestContainmentWithPolicyDir checks that a restricted compartment stays
// closed under an operator's policy directory, which knows nothing of
// containment, and that the memo tells a restricted patient from an
// unrestricted one.
func TestContainmentWithPolicyDir(t *testing.T) {
	dir := t.TempDir()
	site := `@id("site-care-team") permit (principal, action, resource) when { resource.category == "patient" && resource.patient.careTeam.contains(principal) };`
	if err := os.WriteFile(filepath.Join(dir, "site.cedar"), []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := policy.New(policy.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	req := policy.Request{
		Principal: policy.Principal{ID: "u1", Kind: policy.KindStaff, Roles: []string{"nurse"}, TrainingValidUntil: t0.Add(time.Hour)},
		Action:    policy.Read,
		Resource:  policy.Resource{Type: "Observation", ID: "o1", Category: policy.CategoryPatient},
		Patient:   policy.Patient{ID: "p1", CareTeam: []string{"u1"}},
		Context:   policy.Context{Time: t0},
	}
	for _, restricted := range []bool{false, true, false, true} {
		req.Patient.Restricted = restricted
		d, err := a.Decide(context.Background(), req)
		if err != nil || d.Allow == restricted {
			t.Fatalf("restricted=%v: %+v, %v", restricted, d, err)
		}
		if restricted && !slices.Contains(d.Policies, "forbid-restricted-compartment") {
			t.Fatalf("refused by %v, want forbid-restricted-compartment", d.Policies)
		}
	}
	// A directory may not shadow the containment policies' file.
	if err := os.WriteFile(filepath.Join(dir, "phivault-containment.cedar"), []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(dir); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("Reload with the containment file's name = %v, want EINVALID", err)
	}
}
