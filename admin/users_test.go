package admin_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
)

const (
	adminToken   = "admin-secret"
	managerToken = "manager-token" // principal with security-admin
	// secondAdminToken is another security admin, mgr2.
	secondAdminToken = "second-admin-token"
	nurseToken       = "nurse-token" // principal without it
	// bareToken authenticates with no principal at all.
	bareToken    = "bare-token"
	goodPassword = "Correct-Horse-Battery-9417"
)

// principals authenticates the bootstrap token (with the bootstrap
// principal), two security admins, a nurse, and bareToken with no
// principal.
type principals struct{ bare api.Authenticator }

func (p principals) Authenticate(ctx context.Context, token string) (context.Context, error) {
	switch token {
	case managerToken:
		return phivault.WithPrincipal(api.WithActor(ctx, "mgr1"), &phivault.Principal{ID: "mgr1", Kind: phivault.PrincipalStaff, Roles: []string{"security-admin"}}), nil
	case secondAdminToken:
		return phivault.WithPrincipal(api.WithActor(ctx, "mgr2"), &phivault.Principal{ID: "mgr2", Kind: phivault.PrincipalStaff, Roles: []string{"security-admin"}}), nil
	case nurseToken:
		return phivault.WithPrincipal(api.WithActor(ctx, "nurse1"), &phivault.Principal{ID: "nurse1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}}), nil
	case adminToken:
		// As serve wires it: the bootstrap token carries the bootstrap principal.
		return phivault.WithPrincipal(api.WithActor(ctx, "admin"), access.BootstrapPrincipal("admin")), nil
	}
	return p.bare.Authenticate(ctx, token)
}

type harness struct {
	t       *testing.T
	db      *sqlite.DB
	srv     *httptest.Server
	revoker *storetest.Revoker
	log     *auditlog.Log
	now     time.Time
	bodies  bytes.Buffer // every response body, to search for secrets
}

// newHarness starts the admin API on a fresh store, with opts applied to
// its options.
func newHarness(t *testing.T, opts ...func(*admin.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := storetest.OpenAuditLog(t, db)
	h := &harness{t: t, db: db, revoker: &storetest.Revoker{}, log: l, now: time.Now()}
	fast := &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	o := admin.Options{
		Authenticator: principals{&api.TokenAuthenticator{Hash: api.HashToken(bareToken), Actor: "bare"}},
		Accounts:      db,
		Clients:       db,
		Revoker:       h.revoker,
		Audit:         l,
		Hasher:        fast,
		Now:           func() time.Time { return h.now },
	}
	for _, f := range opts {
		f(&o)
	}
	handler := admin.NewHandler(o)
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	return h
}

// do sends a request with token and returns the status and body.
func (h *harness) do(token, method, path string, body any) (int, []byte) {
	h.t.Helper()
	var s string
	switch b := body.(type) {
	case nil:
	case string:
		s = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		s = string(j)
	}
	resp, b := send(h.t, method, h.srv.URL+path, token, s)
	if !(method == "POST" && strings.HasSuffix(path, "/totp")) { // the one answer that holds a secret
		h.bodies.WriteString(b)
	}
	return resp.StatusCode, []byte(b)
}

// must sends a request as the bootstrap admin and fails unless it answers
// want; it decodes the body into v if v is not nil.
func (h *harness) must(want int, method, path string, body, v any) {
	h.t.Helper()
	status, b := h.do(adminToken, method, path, body)
	if status != want {
		h.t.Fatalf("%s %s = %d %s, want %d", method, path, status, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// createUser creates a staff account with roles, a department and a
// password, as a security admin (mgr1) asks for it and, if it waits for a
// second admin, as mgr2 approves it.
func (h *harness) createUser(name string, roles ...string) admin.User {
	h.t.Helper()
	return h.asked(managerToken, "POST", "/admin/users", admin.UserCreate{Username: name, Roles: roles, Password: goodPassword, Department: "cardiology"})
}

// asked sends a request with token and returns the account it answers:
// at once (200, 201), or, for a change that waits (202), once mgr2 has
// approved it.
func (h *harness) asked(token, method, path string, body any) admin.User {
	h.t.Helper()
	status, b := h.do(token, method, path, body)
	switch status {
	case http.StatusOK, http.StatusCreated:
	case http.StatusAccepted:
		var out struct{ Change admin.PendingChange }
		if err := json.Unmarshal(b, &out); err != nil || out.Change.ID == "" {
			h.t.Fatalf("%s %s = 202 %s: %v", method, path, b, err)
		}
		status, b = h.do(secondAdminToken, "POST", "/admin/changes/"+out.Change.ID+"/approve", nil)
		if status != http.StatusOK {
			h.t.Fatalf("approval of %s %s = %d %s, want 200", method, path, status, b)
		}
	default:
		h.t.Fatalf("%s %s = %d %s", method, path, status, b)
	}
	var u admin.User
	if err := json.Unmarshal(b, &u); err != nil {
		h.t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
	return u
}

// audit returns every audit entry written so far.
func (h *harness) audit() []*phivault.AuditEntry {
	h.t.Helper()
	return storetest.AuditEntries(h.t, h.log, h.db)
}

// noSecrets fails if any response so far or any audit entry holds a
// password hash, a TOTP secret or the test password.
func (h *harness) noSecrets(secrets ...string) {
	h.t.Helper()
	all := h.bodies.String()
	for _, e := range h.audit() {
		b, _ := json.Marshal(e)
		all += string(b)
	}
	for _, s := range append(secrets, "$argon2id", goodPassword) {
		if s != "" && strings.Contains(all, s) {
			h.t.Errorf("a response or audit entry holds a secret (%.12s...)", s)
		}
	}
}

func TestUsers_CreateGetList(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.house", "physician")
	if u.ID == "" || u.Username != "dr.house" || u.Kind != "staff" || !slices.Equal(u.Roles, []string{"physician"}) ||
		u.Status != "active" || !u.Password || u.TOTP || u.Version != 1 {
		t.Fatalf("created %+v", u)
	}
	acc, err := h.db.AccountByID(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := identity.NewHasher().Verify(acc.PasswordHash, goodPassword); !ok || err != nil {
		t.Errorf("stored hash does not verify the password: %v", err)
	}
	var got admin.User
	h.must(200, "GET", "/admin/users/"+u.ID, nil, &got)
	if got.ID != u.ID || got.Department != "cardiology" {
		t.Errorf("GET = %+v", got)
	}
	h.createUser("nurse.joy", "nurse")
	var list struct{ Users []admin.User }
	h.must(200, "GET", "/admin/users", nil, &list)
	if len(list.Users) != 2 {
		t.Errorf("list has %d users, want 2", len(list.Users))
	}
	h.must(200, "GET", "/admin/users?username=nurse.joy", nil, &list)
	if len(list.Users) != 1 || list.Users[0].Username != "nurse.joy" {
		t.Errorf("list by username = %+v", list.Users)
	}
	var none struct{ Users []admin.User }
	h.must(200, "GET", "/admin/users?username=nobody", nil, &none)
	if none.Users == nil || len(none.Users) != 0 {
		t.Errorf("list by an unknown username = %+v, want []", none.Users)
	}
	h.must(404, "GET", "/admin/users/nope", nil, nil)

	// Each create is asked for by mgr1 and approved by mgr2.
	entries := h.audit()
	if len(entries) != 4 {
		t.Fatalf("%d audit entries, want 4 (asked and approved, per create)", len(entries))
	}
	for i, actor := range []string{"mgr1", "mgr2"} {
		e := entries[i]
		if e.Action != phivault.ActionAccountChange || e.TargetType != "Account" || e.TargetID != u.ID || e.Actor != actor || e.Outcome != "ok" {
			t.Errorf("audit entry %d = %+v", i, e)
		}
	}
	h.noSecrets(acc.PasswordHash)
	b, _ := json.Marshal(entries)
	if strings.Contains(string(b), "dr.house") || strings.Contains(string(b), "cardiology") {
		t.Errorf("audit entries hold a username or department: %s", b)
	}
}

func TestUsers_CreateBadInput(t *testing.T) {
	h := newHarness(t)
	h.createUser("taken", "nurse")
	tests := []struct {
		name string
		body any
		want int
		msg  string
	}{
		{"NotJSON", "{", 400, "JSON object"},
		{"UnknownField", `{"username":"a","bogus":1}`, 400, "Unknown field"},
		{"WrongType", `{"username":5}`, 400, "wrong type"},
		{"NoUsername", admin.UserCreate{Password: goodPassword}, 400, "username"},
		{"SpaceInUsername", admin.UserCreate{Username: "a b"}, 400, "spaces"},
		{"UnknownRole", admin.UserCreate{Username: "x1", Roles: []string{"surgeon"}}, 400, "Unknown role"},
		{"DuplicateRole", admin.UserCreate{Username: "x1", Roles: []string{"nurse", "nurse"}}, 400, "twice"},
		{"UnknownClearance", admin.UserCreate{Username: "x1", Clearances: []string{"TOPSECRET"}}, 400, "Unknown clearance"},
		{"BadKind", admin.UserCreate{Username: "x1", Kind: "robot"}, 400, "kind"},
		{"PatientWithoutID", admin.UserCreate{Username: "x1", Kind: "patient"}, 400, "patient_id"},
		{"PatientWithRoles", admin.UserCreate{Username: "x1", Kind: "patient", PatientID: "p1", Roles: []string{"nurse"}}, 400, "no roles"},
		{"StaffWithPatientID", admin.UserCreate{Username: "x1", PatientID: "p1"}, 400, "patient_id"},
		{"BadPractitionerID", admin.UserCreate{Username: "x1", PractitionerID: "a/b"}, 400, "FHIR id"},
		{"ShortPassword", admin.UserCreate{Username: "x1", Password: "short"}, 400, "at least"},
		{"CommonPassword", admin.UserCreate{Username: "x1", Password: "password1234"}, 400, "common"},
		{"BadTrainingDate", admin.UserCreate{Username: "x1", TrainingValidUntil: "31/12/2030"}, 400, "YYYY-MM-DD"},
		{"Taken", admin.UserCreate{Username: "taken"}, 409, "taken"},
		{"TooLarge", `{"username":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "over"},
	}
	for _, tt := range tests {
		status, b := h.do(adminToken, "POST", "/admin/users", tt.body)
		if status != tt.want || !strings.Contains(string(b), tt.msg) || !strings.Contains(string(b), "OperationOutcome") {
			t.Errorf("%s: POST /admin/users = %d %s, want %d with %q", tt.name, status, b, tt.want, tt.msg)
		}
	}
	accs, _ := h.db.Accounts(context.Background())
	if len(accs) != 1 {
		t.Errorf("%d accounts after bad creates, want 1", len(accs))
	}
	if strings.Contains(h.bodies.String(), "password1234") {
		t.Error("an error echoed the password")
	}
}

func TestUsers_Authorization(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.who", "physician")
	for _, r := range []struct{ method, path string }{
		{"GET", "/admin/users"},
		{"POST", "/admin/users"},
		{"GET", "/admin/users/" + u.ID},
		{"PATCH", "/admin/users/" + u.ID},
		{"POST", "/admin/users/" + u.ID + "/totp"},
		{"POST", "/admin/users/" + u.ID + "/password"},
		{"PUT", "/admin/users/" + u.ID + "/training"},
		{"POST", "/admin/training"},
		{"GET", "/admin/clients"},
		{"POST", "/admin/clients"},
	} {
		if status, b := h.do(nurseToken, r.method, r.path, `{"status":"suspended"}`); status != 403 || !strings.Contains(string(b), "security-admin") {
			t.Errorf("nurse %s %s = %d %s, want 403", r.method, r.path, status, b)
		}
		if status, _ := h.do("wrong", r.method, r.path, nil); status != 401 {
			t.Errorf("bad token %s %s = %d, want 401", r.method, r.path, status)
		}
	}
	for _, path := range []string{"/admin/patients/p1/$shred", "/admin/patients/p1/$rotate-key", "/admin/keys/$rotate",
		"/admin/keys/k1/$compromised", "/admin/$seal", "/admin/$unseal"} {
		if status, b := h.do(nurseToken, "POST", path, nil); status != 403 || !strings.Contains(string(b), "security-admin") {
			t.Errorf("nurse POST %s = %d %s, want 403", path, status, b)
		}
	}
	if status, _ := h.do(nurseToken, "GET", "/admin/keys/status", nil); status != 403 {
		t.Errorf("nurse GET /admin/keys/status = %d, want 403", status)
	}
	acc, _ := h.db.AccountByID(context.Background(), u.ID)
	if acc.Status != "active" || acc.Version != 1 {
		t.Errorf("account changed by refused requests: %v v%d", acc.Status, acc.Version)
	}
	// A security admin may.
	if status, b := h.do(managerToken, "PATCH", "/admin/users/"+u.ID, `{"department":"oncology"}`); status != 200 {
		t.Fatalf("security-admin PATCH = %d %s", status, b)
	}
	var refused, byMgr int
	for _, e := range h.audit() {
		if e.Outcome == phivault.EFORBIDDEN && e.Actor == "nurse1" {
			refused++
		}
		if e.Outcome == "ok" && e.Actor == "mgr1" && slices.Equal(e.Roles, []string{"security-admin"}) && e.TargetID == u.ID && e.Decision == "" {
			byMgr++
		}
	}
	// 10 user and client routes, 6 key, seal and shred operations.
	if refused != 16 || byMgr != 1 {
		t.Errorf("audit: %d refused entries by the nurse (want 16), %d changes by the manager (want 1)", refused, byMgr)
	}
}

func TestUsers_UpdateRevokes(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.strange", "physician")
	var got admin.User
	h.must(200, "PATCH", "/admin/users/"+u.ID, map[string]any{"external_id": "ext-9"}, &got)
	if got.ExternalID != "ext-9" || h.revoker.Count(u.ID) != 0 {
		t.Errorf("external id change: %+v, %d revocations, want 0", got, h.revoker.Count(u.ID))
	}
	got = h.asked(managerToken, "PATCH", "/admin/users/"+u.ID, map[string]any{"roles": []string{"physician", "privacy-officer"}, "clearances": []string{"PSY"}})
	if !slices.Equal(got.Roles, []string{"physician", "privacy-officer"}) || h.revoker.Count(u.ID) != 1 {
		t.Errorf("role change: %+v, %d revocations, want 1", got, h.revoker.Count(u.ID))
	}
	h.must(200, "PATCH", "/admin/users/"+u.ID, map[string]any{"status": "suspended"}, &got)
	if got.Status != "suspended" || h.revoker.Count(u.ID) != 2 {
		t.Errorf("suspend: %+v, %d revocations, want 2", got, h.revoker.Count(u.ID))
	}
	h.must(200, "PATCH", "/admin/users/"+u.ID, map[string]any{"status": "deprovisioned"}, &got)
	if got.Status != "deprovisioned" || h.revoker.Count(u.ID) != 3 {
		t.Errorf("deprovision: %+v, %d revocations", got, h.revoker.Count(u.ID))
	}
	for _, body := range []string{`{"status":"gone"}`, `{"roles":["wizard"]}`, `{"training_valid_until":"soon"}`, `{"username":"x"}`} {
		if status, b := h.do(adminToken, "PATCH", "/admin/users/"+u.ID, body); status != 400 {
			t.Errorf("PATCH %s = %d %s, want 400", body, status, b)
		}
	}
	acc, _ := h.db.AccountByID(context.Background(), u.ID)
	if acc.Status != "deprovisioned" || acc.Version != 5 {
		t.Errorf("after bad patches: status %s version %d, want deprovisioned 5", acc.Status, acc.Version)
	}
	h.must(404, "PATCH", "/admin/users/nope", `{"department":"x"}`, nil)
}

func TestUsers_Password(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.quinn", "physician")
	ctx := context.Background()
	acc, _ := h.db.AccountByID(ctx, u.ID)
	acc.FailedLogins, acc.LockedUntil, acc.Version = 7, h.now.Add(time.Hour), acc.Version+1
	if err := h.db.UpdateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	if status, b := h.do(managerToken, "POST", "/admin/users/"+u.ID+"/password", `{"password":"dr.quinn-12345678"}`); status != 400 {
		t.Errorf("password with username = %d %s, want 400", status, b)
	}
	if h.revoker.Count(u.ID) != 0 {
		t.Error("refused password change revoked sessions")
	}
	const newPass = "Ultraviolet-Anchor-5531"
	h.asked(managerToken, "POST", "/admin/users/"+u.ID+"/password", map[string]string{"password": newPass})
	acc, _ = h.db.AccountByID(ctx, u.ID)
	if ok, _, _ := identity.NewHasher().Verify(acc.PasswordHash, newPass); !ok || acc.FailedLogins != 0 || !acc.LockedUntil.IsZero() {
		t.Errorf("after reset: password ok %v, failed %d, locked %v", ok, acc.FailedLogins, acc.LockedUntil)
	}
	if h.revoker.Count(u.ID) != 1 {
		t.Errorf("%d revocations after reset, want 1", h.revoker.Count(u.ID))
	}
	h.noSecrets(acc.PasswordHash, newPass)
}

func TestUsers_TOTP(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.zhivago", "physician")
	var enr admin.TOTPEnrollment

	// Too many wrong codes drop an enrollment; an expired one is gone.
	h.must(200, "POST", "/admin/users/"+u.ID+"/totp", nil, nil)
	for range 5 {
		h.must(400, "POST", "/admin/users/"+u.ID+"/totp/confirm", `{"code":"000000"}`, nil)
	}
	h.must(409, "POST", "/admin/users/"+u.ID+"/totp/confirm", `{"code":"000000"}`, nil)
	h.must(200, "POST", "/admin/users/"+u.ID+"/totp", nil, &enr)
	h.now = h.now.Add(admin.DefaultTOTPEnrollTTL + time.Second)
	key, _ := otp.NewKeyFromURL(enr.URI)
	h.must(409, "POST", "/admin/users/"+u.ID+"/totp/confirm", map[string]string{"code": totpCode(t, key.Secret(), h.now)}, nil)

	h.must(200, "POST", "/admin/users/"+u.ID+"/totp", nil, &enr)
	key, err := otp.NewKeyFromURL(enr.URI)
	if err != nil || key.Issuer() != "phivault" || key.AccountName() != "dr.zhivago" {
		t.Fatalf("otpauth URI %v: issuer %q account %q", err, key.Issuer(), key.AccountName())
	}
	secret := key.Secret()
	// Not active until confirmed.
	acc, _ := h.db.AccountByID(context.Background(), u.ID)
	if len(acc.TOTPSecret) != 0 {
		t.Fatal("TOTP secret stored before confirmation")
	}
	h.must(400, "POST", "/admin/users/"+u.ID+"/totp/confirm", `{"code":"000000"}`, nil)
	h.must(409, "POST", "/admin/users/nope/totp/confirm", `{"code":"000000"}`, nil)
	code := totpCode(t, secret, h.now)
	h.must(200, "POST", "/admin/users/"+u.ID+"/totp/confirm", map[string]string{"code": code}, nil)
	acc, _ = h.db.AccountByID(context.Background(), u.ID)
	if len(acc.TOTPSecret) == 0 || acc.TOTPLastStep != (identity.TOTP{}).Step(h.now) {
		t.Fatalf("after confirm: secret set %v, last step %d", len(acc.TOTPSecret) > 0, acc.TOTPLastStep)
	}
	// The confirming code cannot be used again, to confirm or to log in.
	h.must(409, "POST", "/admin/users/"+u.ID+"/totp/confirm", map[string]string{"code": code}, nil)
	if _, ok := identity.VerifyTOTP(acc.TOTPSecret, code, h.now, acc.TOTPLastStep); ok {
		t.Error("the confirmation code is still accepted")
	}
	var got admin.User
	h.must(200, "GET", "/admin/users/"+u.ID, nil, &got)
	if !got.TOTP {
		t.Error("user view says no TOTP")
	}
	// Listings say so too, though they carry no credentials.
	for _, path := range []string{"/admin/users", "/admin/users?username=" + u.Username} {
		var list struct{ Users []admin.User }
		h.must(200, "GET", path, nil, &list)
		if len(list.Users) != 1 || !list.Users[0].TOTP || list.Users[0].WebAuthn {
			t.Errorf("GET %s = %+v; want one user with TOTP and no WebAuthn", path, list.Users)
		}
	}
	// The secret was returned once, by the enrollment call only.
	h.noSecrets(secret, acc.PasswordHash)

	// An enrolled factor is not replaced, and it is removed only with a
	// second admin's approval.
	h.must(403, "POST", "/admin/users/"+u.ID+"/totp", nil, nil)
	h.must(403, "DELETE", "/admin/users/"+u.ID+"/totp", nil, nil)
	h.asked(managerToken, "DELETE", "/admin/users/"+u.ID+"/totp", nil)
	acc, _ = h.db.AccountByID(context.Background(), u.ID)
	if len(acc.TOTPSecret) != 0 {
		t.Error("TOTP secret left after an approved removal")
	}
}

// totpCode computes the code of a base32 secret at now.
func totpCode(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	raw, err := decodeBase32(secret)
	if err != nil {
		t.Fatal(err)
	}
	var c identity.TOTP
	code, err := c.Code(raw, c.Step(now))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestUsers_NoAccountStore(t *testing.T) {
	h := admin.NewHandler(admin.Options{Authenticator: &api.TokenAuthenticator{Hash: api.HashToken(adminToken), Actor: "admin"}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, _ := send(t, "GET", srv.URL+"/admin/users", adminToken, "")
	if resp.StatusCode != 415 {
		t.Errorf("GET /admin/users without a store = %d, want 415", resp.StatusCode)
	}
}

func decodeBase32(s string) ([]byte, error) {
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(s))
}

func TestMayManage(t *testing.T) {
	if admin.BootstrapRole != access.BootstrapRole {
		t.Fatalf("admin.BootstrapRole = %q, want access.BootstrapRole %q", admin.BootstrapRole, access.BootstrapRole)
	}
	tests := []struct {
		p    *phivault.Principal
		want bool
	}{
		{nil, false},
		{access.BootstrapPrincipal("admin"), true},
		{&phivault.Principal{Kind: phivault.PrincipalStaff, Roles: []string{"security-admin"}}, true},
		{&phivault.Principal{Kind: phivault.PrincipalStaff, Roles: []string{"physician", "privacy-officer"}}, false},
		{&phivault.Principal{Kind: phivault.PrincipalSystem, Roles: []string{"security-admin"}}, false},
		{&phivault.Principal{Kind: phivault.PrincipalPatient, Roles: []string{"security-admin"}}, false},
		{&phivault.Principal{Kind: phivault.PrincipalStaff, Roles: []string{"bootstrap-admin"}}, false},
	}
	for _, tt := range tests {
		if got := admin.MayManage(tt.p); got != tt.want {
			t.Errorf("MayManage(%+v) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

// TestUsers_UpdateKindless changes an account stored before accounts had a
// kind (migration 0007 gives them ""): it counts as staff.
func TestUsers_UpdateKindless(t *testing.T) {
	h := newHarness(t)
	old := &phivault.Account{ID: "old-1", Username: "old.timer", Roles: []string{"nurse"}, Status: phivault.AccountActive, Created: time.Now()}
	if err := h.db.CreateAccount(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	var u admin.User
	h.must(200, "PATCH", "/admin/users/old-1", map[string]any{"department": "oncology"}, &u)
	if u.Department != "oncology" {
		t.Errorf("department = %q after PATCH", u.Department)
	}
}

// entriesOf returns the account-change entries of typ/id.
func (h *harness) entriesOf(typ, id string) []*phivault.AuditEntry {
	h.t.Helper()
	var out []*phivault.AuditEntry
	for _, e := range h.audit() {
		if e.Action == phivault.ActionAccountChange && e.TargetType == typ && e.TargetID == id {
			out = append(out, e)
		}
	}
	return out
}

// badReasons are reasons that are not codes: free text, in which PHI
// could hide, and near misses of the rule.
var badReasons = []string{
	"left the organisation",
	"Left-organisation",
	"covering for Jane Doe, MRN 4471-2290",
	"jane.doe@example.org",
	"left_organisation",
	"-left-organisation",
	"",
	strings.Repeat("a", 65),
}

func TestUsers_UpdateStatusReason(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.leave", "nurse")

	// A reason code goes with the status into the change's entry.
	if status, body := h.do(managerToken, "PATCH", "/admin/users/"+u.ID, map[string]any{"status": "suspended", "reason": "left-organisation"}); status != http.StatusOK {
		t.Fatalf("suspend with a reason = %d %s, want 200", status, body)
	}
	es := h.entriesOf("Account", u.ID)
	if e := es[len(es)-1]; e.Outcome != "ok" || e.Actor != "mgr1" || e.Decision != "status suspended (reason left-organisation)" {
		t.Errorf("the suspension's entry = %+v, want decision \"status suspended (reason left-organisation)\"", e)
	}
	a := h.account(u.ID)
	if a.Status != phivault.AccountSuspended {
		t.Fatalf("status = %q after suspension, want suspended", a.Status)
	}

	// Anything but a code is refused, and nothing changes: not the
	// account, and no typed text in the trail.
	for _, bad := range badReasons {
		status, body := h.do(managerToken, "PATCH", "/admin/users/"+u.ID, map[string]any{"status": "active", "reason": bad})
		if status != http.StatusBadRequest || !strings.Contains(string(body), "lowercase letters, digits and hyphens") ||
			!strings.Contains(string(body), "OperationOutcome") || bad != "" && strings.Contains(string(body), bad) {
			t.Errorf("reason %q = %d %s, want 400 stating the rule without the reason", bad, status, body)
		}
	}
	// A reason says why the status changes: without one it is refused.
	status, body := h.do(managerToken, "PATCH", "/admin/users/"+u.ID, map[string]any{"department": "oncology", "reason": "left-organisation"})
	if status != http.StatusBadRequest || !strings.Contains(string(body), "send it with status") {
		t.Errorf("a reason without a status = %d %s, want 400", status, body)
	}
	if got := h.account(u.ID); got.Status != phivault.AccountSuspended || got.Department != "cardiology" || got.Version != a.Version {
		t.Errorf("refused updates changed the account: %s, %q, v%d (want v%d)", got.Status, got.Department, got.Version, a.Version)
	}
	refused := h.entriesOf("Account", u.ID)[len(es):]
	if len(refused) != len(badReasons)+1 {
		t.Errorf("%d entries of refused updates, want %d", len(refused), len(badReasons)+1)
	}
	for _, e := range refused {
		if e.Outcome != phivault.EINVALID || e.Decision != "" {
			t.Errorf("a refused update's entry = %+v, want outcome invalid and no decision", e)
		}
	}
	all, _ := json.Marshal(h.audit())
	for _, bad := range badReasons[:5] {
		if strings.Contains(string(all), bad) {
			t.Errorf("the trail holds the refused reason %q", bad)
		}
	}

	// Callers that give no reason are answered as before.
	if status, body := h.do(managerToken, "PATCH", "/admin/users/"+u.ID, map[string]any{"status": "active"}); status != http.StatusOK {
		t.Fatalf("activate without a reason = %d %s, want 200", status, body)
	}
	if es := h.entriesOf("Account", u.ID); es[len(es)-1].Decision != "" || es[len(es)-1].Outcome != "ok" {
		t.Errorf("the activation's entry = %+v, want no decision", es[len(es)-1])
	}
}
