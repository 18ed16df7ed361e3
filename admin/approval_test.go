package admin_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/identity"
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

	// A change that grants nothing applies at once, to one's own account
	// and to others (grants to others: TestApproval_grantToAnotherAccount).
	if status, body := h.do(managerToken, "PATCH", "/admin/users/mgr1", map[string]any{"external_id": "hr-42"}); status != http.StatusOK {
		t.Errorf("external_id self-change = %d %s, want 200", status, body)
	}
	other := h.createUser("dr.other", "nurse")
	if status, body := h.do(managerToken, "PATCH", "/admin/users/"+other.ID, map[string]any{"department": "oncology"}); status != http.StatusOK {
		t.Fatalf("department of another account = %d %s, want 200", status, body)
	}

	// Every step is in the audit trail.
	var steps []string
	for _, e := range h.audit() {
		if e.TargetID == "mgr1" && strings.HasPrefix(e.Decision, "change ") {
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

// pending sends a request with token, expects 202 and returns the change
// that waits.
func (h *harness) pending(token, method, path string, v any) admin.PendingChange {
	h.t.Helper()
	status, body := h.do(token, method, path, v)
	if status != http.StatusAccepted {
		h.t.Fatalf("%s %s = %d %s, want 202 (a change that waits for a second admin)", method, path, status, body)
	}
	var out struct {
		Change  admin.PendingChange
		Message string
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Change.ID == "" || !strings.Contains(out.Message, "approve -change "+out.Change.ID) {
		h.t.Fatalf("202 body %s: %v; want the change and how to approve it", body, err)
	}
	return out.Change
}

// refusedApprovals tries to approve change id as the admin who asked for
// it (mgr1), as the bootstrap token and as a caller with no principal, and
// fails unless each is refused and the change still waits.
func (h *harness) refusedApprovals(id string) {
	h.t.Helper()
	for _, token := range []string{managerToken, adminToken, bareToken} {
		if status, body := h.do(token, "POST", "/admin/changes/"+id+"/approve", nil); status != http.StatusForbidden {
			h.t.Errorf("approval with %s = %d %s, want 403", token, status, body)
		}
	}
	if status, body := h.do(secondAdminToken, "GET", "/admin/changes", nil); status != http.StatusOK || !strings.Contains(string(body), id) {
		h.t.Errorf("GET changes after refused approvals = %d %s, want the change still listed", status, body)
	}
}

// approve approves change id as mgr2 and returns the account it answers.
func (h *harness) approve(id string) admin.User {
	h.t.Helper()
	status, body := h.do(secondAdminToken, "POST", "/admin/changes/"+id+"/approve", nil)
	if status != http.StatusOK {
		h.t.Fatalf("approval by mgr2 = %d %s, want 200", status, body)
	}
	var u admin.User
	if err := json.Unmarshal(body, &u); err != nil {
		h.t.Fatal(err)
	}
	return u
}

// TestApproval_newClinicalAccount: a security admin creates an account
// with a clinical role and a clearance. It does not exist, and cannot be
// enrolled or used, until a second admin approves.
func TestApproval_newClinicalAccount(t *testing.T) {
	h := newHarness(t)
	c := h.pending(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "dr.sock", Roles: []string{"physician"},
		Clearances: []string{"PSY"}, Password: goodPassword})
	if c.RequestedBy != "mgr1" || c.AccountID == "" {
		t.Errorf("pending change %+v", c)
	}
	var list struct{ Users []admin.User }
	h.must(200, "GET", "/admin/users?username=dr.sock", nil, &list)
	if len(list.Users) != 0 {
		t.Fatalf("the account exists before approval: %+v", list.Users)
	}
	if status, body := h.do(managerToken, "POST", "/admin/users/"+c.AccountID+"/totp", nil); status != http.StatusNotFound {
		t.Errorf("TOTP enrollment on the unapproved account = %d %s, want 404", status, body)
	}
	// Another request for the same name waits too: a name is taken once created.
	if status, body := h.do(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "dr.sock", Roles: []string{"physician"}}); status != http.StatusAccepted {
		t.Errorf("second request for the same username = %d %s, want 202 (taken only once created)", status, body)
	}
	h.refusedApprovals(c.ID)
	h.must(200, "GET", "/admin/users?username=dr.sock", nil, &list)
	if len(list.Users) != 0 {
		t.Fatal("a refused approval created the account")
	}

	u := h.approve(c.ID)
	if u.ID != c.AccountID || u.Username != "dr.sock" || !slices.Equal(u.Roles, []string{"physician"}) ||
		!slices.Equal(u.Clearances, []string{"PSY"}) || !u.Password || u.Status != "active" {
		t.Errorf("approved account %+v", u)
	}
	// Its first TOTP is enrolled at once, as for any new account.
	if status, body := h.do(managerToken, "POST", "/admin/users/"+u.ID+"/totp", nil); status != http.StatusOK {
		t.Errorf("first TOTP of the approved account = %d %s, want 200", status, body)
	}

	// Neither a patient account nor a practitioner link is made at once,
	// and an account that holds no grant is.
	h.pending(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "pat.sock", Kind: "patient", PatientID: "p1"})
	h.pending(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "linked", PractitionerID: "pr-1"})
	h.pending(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "sec.sock", Roles: []string{"security-admin"}})
	if status, body := h.do(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "po", Roles: []string{"privacy-officer"}}); status != http.StatusCreated {
		t.Errorf("a privacy officer = %d %s, want 201", status, body)
	}
	// The bootstrap token cannot create any of them.
	for _, req := range []admin.UserCreate{
		{Username: "dr.boot", Roles: []string{"physician"}},
		{Username: "pat.boot", Kind: "patient", PatientID: "p1"},
		{Username: "cleared", Clearances: []string{"R"}},
	} {
		if status, body := h.do(adminToken, "POST", "/admin/users", req); status != http.StatusForbidden {
			t.Errorf("bootstrap creates %+v = %d %s, want 403", req, status, body)
		}
	}
	h.noSecrets()
}

// TestApproval_grantToAnotherAccount: a grant to an existing account
// waits; a change that takes access away or grants nothing does not.
func TestApproval_grantToAnotherAccount(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("nurse.ann", "nurse")
	path := "/admin/users/" + u.ID
	c := h.pending(managerToken, "PATCH", path, map[string]any{"roles": []string{"nurse", "physician"}})
	if a := h.account(u.ID); !slices.Equal(a.Roles, []string{"nurse"}) {
		t.Fatalf("roles %v before approval, want [nurse]", a.Roles)
	}
	h.refusedApprovals(c.ID)
	if got := h.approve(c.ID); !slices.Equal(got.Roles, []string{"nurse", "physician"}) {
		t.Errorf("roles after approval %v", got.Roles)
	}
	h.pending(managerToken, "PATCH", path, map[string]any{"clearances": []string{"HIV"}})
	h.pending(managerToken, "PATCH", path, map[string]any{"practitioner_id": "pr-7"})
	h.pending(managerToken, "PATCH", path, map[string]any{"roles": []string{"nurse", "physician", "security-admin"}})
	for _, body := range []map[string]any{
		{"roles": []string{"nurse", "physician", "privacy-officer"}},
		{"roles": []string{"nurse"}},
		{"department": "icu", "organization": "org-2", "training_valid_until": "2030-01-01"},
		{"status": "suspended"},
		{"status": "active"},
	} {
		if status, b := h.do(managerToken, "PATCH", path, body); status != http.StatusOK {
			t.Errorf("PATCH %v = %d %s, want 200 (grants nothing)", body, status, b)
		}
	}
	if status, b := h.do(adminToken, "PATCH", path, map[string]any{"roles": []string{"nurse", "billing"}}); status != http.StatusForbidden {
		t.Errorf("bootstrap grants billing = %d %s, want 403", status, b)
	}
	if a := h.account(u.ID); !slices.Equal(a.Roles, []string{"nurse"}) || len(a.Clearances) != 0 || a.PractitionerID != "" {
		t.Errorf("unapproved grants applied: %+v", a)
	}

	// The account a change is for does not approve it either.
	if err := h.db.CreateAccount(t.Context(), &phivault.Account{ID: "mgr2", Username: "mgr.two", Kind: phivault.PrincipalStaff,
		Roles: []string{"security-admin"}, Status: phivault.AccountActive, Created: h.now}); err != nil {
		t.Fatal(err)
	}
	c = h.pending(managerToken, "PATCH", "/admin/users/mgr2", map[string]any{"roles": []string{"security-admin", "physician"}})
	if status, b := h.do(secondAdminToken, "POST", "/admin/changes/"+c.ID+"/approve", nil); status != http.StatusForbidden {
		t.Errorf("approval by the account it grants to = %d %s, want 403", status, b)
	}
}

// TestApproval_takeOverClinician: a security admin resets another
// clinician's password and second factor to take the account over. Both
// wait for a second admin; replacing the factor is refused.
func TestApproval_takeOverClinician(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.victim", "physician")
	a := h.account(u.ID)
	a.TOTPSecret, a.Version = []byte("12345678901234567890"), a.Version+1
	if err := h.db.UpdateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	const stolen = "Attacker-Chosen-Words-5150"
	pw := h.pending(managerToken, "POST", "/admin/users/"+u.ID+"/password", map[string]string{"password": stolen})
	mfa := h.pending(managerToken, "DELETE", "/admin/users/"+u.ID+"/totp", nil)
	if status, body := h.do(managerToken, "POST", "/admin/users/"+u.ID+"/totp", nil); status != http.StatusForbidden {
		t.Errorf("replacing the clinician's TOTP = %d %s, want 403", status, body)
	}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/admin/users/" + u.ID + "/password", `{"password":"` + stolen + `"}`},
		{"DELETE", "/admin/users/" + u.ID + "/totp", ""},
	} {
		if status, body := h.do(adminToken, r.method, r.path, r.body); status != http.StatusForbidden {
			t.Errorf("bootstrap %s %s = %d %s, want 403", r.method, r.path, status, body)
		}
	}
	h.refusedApprovals(pw.ID)
	h.refusedApprovals(mfa.ID)
	check := func(wantStolen, wantTOTP bool) {
		t.Helper()
		a := h.account(u.ID)
		ok, _, err := identity.NewHasher().Verify(a.PasswordHash, stolen)
		if err != nil || ok != wantStolen || (len(a.TOTPSecret) > 0) != wantTOTP {
			t.Errorf("password reset %v (err %v), TOTP %v; want reset %v, TOTP %v", ok, err, len(a.TOTPSecret) > 0, wantStolen, wantTOTP)
		}
	}
	check(false, true)
	if h.revoker.Count(u.ID) != 0 {
		t.Error("an unapproved reset revoked the clinician's sessions")
	}
	h.approve(pw.ID)
	h.approve(mfa.ID)
	check(true, false)
	if h.revoker.Count(u.ID) != 2 {
		t.Errorf("%d revocations after two approved resets, want 2", h.revoker.Count(u.ID))
	}
	h.noSecrets(stolen)

	// Self-service stays: an admin sets their own password at once.
	h.addSelf()
	if status, body := h.do(managerToken, "POST", "/admin/users/mgr1/password", map[string]string{"password": "Marble-Osprey-Kettle-2231"}); status != http.StatusOK {
		t.Errorf("setting one's own password = %d %s, want 200", status, body)
	}
}

// TestApproval_bootstrapToken: the bootstrap token creates the first two
// security admins and nothing else that waits for approval, and it
// creates another only when fewer than two are active.
func TestApproval_bootstrapToken(t *testing.T) {
	h := newHarness(t)
	create := func(want int, name string, roles ...string) admin.User {
		t.Helper()
		var u admin.User
		h.must(want, "POST", "/admin/users", admin.UserCreate{Username: name, Roles: roles, Password: goodPassword}, &u)
		return u
	}
	create(403, "sec.nurse", "security-admin", "nurse")
	create(201, "sec.one", "security-admin")
	two := create(201, "sec.two", "security-admin", "privacy-officer")
	create(403, "sec.three", "security-admin")
	create(201, "desk.less") // no grant: at once, as before
	// One admin suspended (locked out, say): the bootstrap token makes a
	// new one, and again no more than two are active.
	h.must(200, "PATCH", "/admin/users/"+two.ID, map[string]any{"status": "suspended"}, nil)
	create(201, "sec.three", "security-admin")
	create(403, "sec.four", "security-admin")
	// And it cannot grant an existing account anything.
	u := create(201, "plain")
	h.must(403, "PATCH", "/admin/users/"+u.ID, map[string]any{"roles": []string{"security-admin"}}, nil)
	h.must(403, "PATCH", "/admin/users/"+u.ID, map[string]any{"roles": []string{"physician"}}, nil)
}

// TestApproval_noPrincipal: a caller the authenticator did not identify
// manages nothing, approves nothing.
func TestApproval_noPrincipal(t *testing.T) {
	if admin.MayManage(nil) {
		t.Error("MayManage(nil) = true")
	}
	h := newHarness(t)
	refused := func(method, path string) {
		t.Helper()
		if status, body := h.do(bareToken, method, path, `{"username":"x"}`); status != http.StatusForbidden {
			t.Errorf("no principal: %s %s = %d %s, want 403", method, path, status, body)
		}
	}
	refused("GET", "/admin/users")
	refused("POST", "/admin/users")
	refused("GET", "/admin/changes")
	refused("POST", "/admin/keys/$rotate")
	c := h.pending(managerToken, "POST", "/admin/users", admin.UserCreate{Username: "dr.nil", Roles: []string{"nurse"}})
	refused("POST", "/admin/changes/"+c.ID+"/approve")
}

// TestApproval_statusReasonKept: a status change with a reason that waits
// for a second admin keeps its reason, and its request and approval are
// entries that name it.
func TestApproval_statusReasonKept(t *testing.T) {
	h := newHarness(t)
	h.addAdmins()

	// One's own suspension waits.
	c := h.selfChange("PATCH", "/admin/users/mgr1", map[string]any{"status": "suspended", "reason": "leave-of-absence"})
	var list struct{ Changes []admin.PendingChange }
	h.must(200, "GET", "/admin/changes", nil, &list)
	if len(list.Changes) != 1 || list.Changes[0].Update == nil || list.Changes[0].Update.Reason == nil || *list.Changes[0].Update.Reason != "leave-of-absence" {
		t.Fatalf("the waiting change does not keep the reason: %+v", list.Changes)
	}
	if a := h.account("mgr1"); a.Status != phivault.AccountActive {
		t.Fatalf("status %q before approval", a.Status)
	}
	h.approve(c.ID)
	if a := h.account("mgr1"); a.Status != phivault.AccountSuspended {
		t.Fatalf("status %q after approval, want suspended", a.Status)
	}
	var steps []string
	for _, e := range h.entriesOf("Account", "mgr1") {
		steps = append(steps, e.Actor+": "+e.Decision)
	}
	want := []string{
		"mgr1: change " + c.ID + " (update, self) requested; awaiting a second admin; status suspended (reason leave-of-absence)",
		"mgr2: change " + c.ID + " (update) requested by mgr1 approved; status suspended (reason leave-of-absence)",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("audit steps:\n%s\nwant\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}

	// So does a client's, when it comes with a change that waits.
	lab := h.storeClient(&phivault.Client{ID: "lab", Name: "lab", Kind: "public",
		RedirectURIs: []string{"https://lab.example.org/cb"}, Scopes: []string{"user/Practitioner.rs"}})
	h.must(200, "PATCH", "/admin/clients/lab", map[string]any{"status": "suspended", "reason": "investigation"}, nil)
	c = h.pending(managerToken, "PATCH", "/admin/clients/lab", map[string]any{"status": "active", "reason": "error-corrected", "scopes": []string{"user/*.rs"}})
	if c.ClientUpdate == nil || c.ClientUpdate.Reason == nil || *c.ClientUpdate.Reason != "error-corrected" {
		t.Fatalf("the waiting client change does not keep the reason: %+v", c)
	}
	if v := h.approveClient(c.ID); v.Status != "active" {
		t.Fatalf("client status %q after approval", v.Status)
	}
	steps = nil
	for _, e := range h.entriesOf("Client", lab.ID) {
		steps = append(steps, e.Actor+": "+e.Decision)
	}
	want = []string{
		"admin: status suspended (reason investigation)",
		"mgr1: change " + c.ID + " (client-update, grant) requested; awaiting a second admin; status active (reason error-corrected)",
		"mgr2: change " + c.ID + " (client-update) requested by mgr1 approved; status active (reason error-corrected)",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("client audit steps:\n%s\nwant\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
}
