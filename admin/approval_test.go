package admin_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
)

// addSelf stores the account of the manager principal (id mgr1), so that
// the manager can try to change their own account.
func (h *harness) addSelf() *phivault.Account {
	h.t.Helper()
	a := &phivault.Account{ID: "mgr1", Username: "mgr.one", Kind: phivault.PrincipalStaff, Roles: []string{"security-admin"},
		Status: phivault.AccountActive, TOTPSecret: []byte("12345678901234567890"), Created: h.now}
	if err := h.db.CreateAccount(h.t.Context(), a); err != nil {
		h.t.Fatal(err)
	}
	return a
}

func (h *harness) account(id string) *phivault.Account {
	h.t.Helper()
	a, err := h.db.AccountByID(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// selfChange sends a request as the manager (mgr1), expects 202 and
// returns the pending change.
func (h *harness) selfChange(method, path string, v any) admin.PendingChange {
	t := h.t
	t.Helper()
	status, body := h.do(managerToken, method, path, v)
	if status != http.StatusAccepted {
		t.Fatalf("self-change = %d %s, want 202", status, body)
	}
	var out struct{ Change admin.PendingChange }
	if err := json.Unmarshal(body, &out); err != nil || out.Change.ID == "" {
		t.Fatalf("202 body %s: %v", body, err)
	}
	return out.Change
}

func TestUsers_selfChangeNeedsSecondAdmin(t *testing.T) {
	h := newHarness(t)
	h.addSelf()

	// A security admin grants itself a clinical role and a clearance: the
	// change waits, nothing is applied.
	c := h.selfChange("PATCH", "/admin/users/mgr1", map[string]any{"roles": []string{"security-admin", "physician"}, "clearances": []string{"PSY"}})
	if c.AccountID != "mgr1" || c.RequestedBy != "mgr1" || c.Kind != admin.ChangeUpdate {
		t.Errorf("pending change %+v", c)
	}
	if a := h.account("mgr1"); !slices.Equal(a.Roles, []string{"security-admin"}) || len(a.Clearances) != 0 {
		t.Fatalf("roles %v clearances %v after a self-change, want unchanged", a.Roles, a.Clearances)
	}
	// The same admin cannot approve it.
	if status, body := h.do(managerToken, "POST", "/admin/changes/"+c.ID+"/approve", nil); status != http.StatusForbidden {
		t.Fatalf("self-approval = %d %s, want 403", status, body)
	}
	if a := h.account("mgr1"); len(a.Roles) != 1 {
		t.Fatalf("roles %v after self-approval, want unchanged", a.Roles)
	}
	// Another admin sees and approves it.
	status, body := h.do(secondAdminToken, "GET", "/admin/changes", nil)
	if status != 200 || !strings.Contains(string(body), c.ID) {
		t.Fatalf("GET changes = %d %s, want the change listed", status, body)
	}
	if status, body := h.do(secondAdminToken, "POST", "/admin/changes/"+c.ID+"/approve", nil); status != http.StatusOK {
		t.Fatalf("approval by another admin = %d %s, want 200", status, body)
	}
	if a := h.account("mgr1"); !slices.Equal(a.Roles, []string{"security-admin", "physician"}) || !slices.Equal(a.Clearances, []string{"PSY"}) {
		t.Errorf("after approval: roles %v clearances %v", a.Roles, a.Clearances)
	}
	if h.revoker.Count("mgr1") == 0 {
		t.Error("the approved change did not revoke the account's sessions")
	}
	// Approved once only.
	if status, _ := h.do(secondAdminToken, "POST", "/admin/changes/"+c.ID+"/approve", nil); status != http.StatusNotFound {
		t.Errorf("second approval = %d, want 404", status)
	}

	// Removing one's own second factor waits too, and can be rejected.
	c = h.selfChange("DELETE", "/admin/users/mgr1/totp", nil)
	if status, body := h.do(secondAdminToken, "POST", "/admin/changes/"+c.ID+"/reject", nil); status != http.StatusOK {
		t.Fatalf("reject = %d %s", status, body)
	}
	if a := h.account("mgr1"); len(a.TOTPSecret) == 0 {
		t.Error("a rejected TOTP removal removed the second factor")
	}
	// So do status and training, and replacing one's own TOTP is refused.
	h.selfChange("PATCH", "/admin/users/mgr1", map[string]any{"status": "active", "practitioner_id": "pr-1"})
	h.selfChange("PUT", "/admin/users/mgr1/training", map[string]any{"valid_until": "2099-12-31"})
	if status, _ := h.do(managerToken, "POST", "/admin/users/mgr1/totp", nil); status != http.StatusForbidden {
		t.Errorf("re-enrolling one's own TOTP = %d, want 403", status)
	}
	if status, body := h.do(managerToken, "POST", "/admin/training", "mgr.one,2099-12-31\n"); status != http.StatusBadRequest {
		t.Errorf("importing one's own training date = %d %s, want 400", status, body)
	}
	if a := h.account("mgr1"); a.PractitionerID != "" || !a.TrainingValidUntil.IsZero() {
		t.Errorf("unapproved changes applied: practitioner %q training %v", a.PractitionerID, a.TrainingValidUntil)
	}

	// A change that grants nothing, and changes to other accounts, apply at once.
	if status, body := h.do(managerToken, "PATCH", "/admin/users/mgr1", map[string]any{"external_id": "hr-42"}); status != http.StatusOK {
		t.Errorf("external_id self-change = %d %s, want 200", status, body)
	}
	other := h.createUser("dr.other", "nurse")
	if status, body := h.do(managerToken, "PATCH", "/admin/users/"+other.ID, map[string]any{"roles": []string{"physician"}}); status != http.StatusOK {
		t.Fatalf("change to another account = %d %s, want 200", status, body)
	}
	if a := h.account(other.ID); !slices.Equal(a.Roles, []string{"physician"}) {
		t.Errorf("another account's roles %v, want [physician]", a.Roles)
	}

	// Every step is in the audit trail.
	var steps []string
	for _, e := range h.audit() {
		if e.TargetID == "mgr1" && strings.HasPrefix(e.Decision, "self-change") {
			steps = append(steps, e.Actor+": "+e.Outcome+": "+e.Decision[strings.LastIndex(e.Decision, " ")+1:])
		}
	}
	want := []string{
		"mgr1: ok: admin", "mgr1: forbidden: refused", "mgr2: ok: approved",
		"mgr1: ok: admin", "mgr2: ok: rejected", "mgr1: ok: admin", "mgr1: ok: admin",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("audit steps:\n%s\nwant\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
}
