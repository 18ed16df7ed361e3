package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/scim"
	"github.com/phivault/phivault/sqlite"
)

const (
	scimToken      = "scim-secret-token"
	nurseToken     = "nurse-token"
	secAdminToken  = "security-admin-token"
	bootstrapToken = "bootstrap-token"
	goodPassword   = "Granite-Willow-Compass-7712"
)

// auth accepts the SCIM token (no principal), and a nurse's, a security
// admin's and the bootstrap token, each with its principal.
type auth struct{ scim api.Authenticator }

func (a auth) Authenticate(ctx context.Context, token string) (context.Context, error) {
	switch token {
	case nurseToken:
		return phivault.WithPrincipal(ctx, &phivault.Principal{ID: "n1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}}), nil
	case secAdminToken:
		return phivault.WithPrincipal(ctx, &phivault.Principal{ID: "mgr1", Kind: phivault.PrincipalStaff, Roles: []string{"security-admin"}}), nil
	case bootstrapToken:
		return phivault.WithPrincipal(ctx, access.BootstrapPrincipal("admin")), nil
	}
	return a.scim.Authenticate(ctx, token)
}

type harness struct {
	t       *testing.T
	db      *sqlite.DB
	srv     *httptest.Server
	revoker *storetest.Revoker
	log     *auditlog.Log
	bodies  bytes.Buffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := storetest.OpenAuditLog(t, db)
	h := &harness{t: t, db: db, revoker: &storetest.Revoker{}, log: l}
	handler := scim.NewHandler(scim.Options{
		Authenticator: auth{&api.TokenAuthenticator{Hash: api.HashToken(scimToken), Actor: "scim"}},
		Accounts:      db,
		Audit:         l,
		Revoker:       h.revoker,
		Hasher:        &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		BaseURL:       "https://vault.example.org/scim/v2",
	})
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) do(token, method, path string, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", scim.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	h.bodies.Write(b)
	if len(b) > 0 && resp.Header.Get("Content-Type") != scim.MediaType {
		h.t.Errorf("%s %s: Content-Type %q, want %s", method, path, resp.Header.Get("Content-Type"), scim.MediaType)
	}
	return resp.StatusCode, b
}

func (h *harness) must(want int, method, path string, body, v any) {
	h.t.Helper()
	status, b := h.do(scimToken, method, path, body)
	if status != want {
		h.t.Fatalf("%s %s = %d %s, want %d", method, path, status, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

func (h *harness) wantError(status int, scimType, method, path string, body any) {
	h.t.Helper()
	got, b := h.do(scimToken, method, path, body)
	var e struct {
		Schemas  []string
		Status   string
		ScimType string
		Detail   string
	}
	if got != status || json.Unmarshal(b, &e) != nil || e.ScimType != scimType || e.Detail == "" ||
		!slices.Contains(e.Schemas, scim.SchemaError) || e.Status != strconv.Itoa(status) {
		h.t.Errorf("%s %s = %d %s, want %d scimType %q", method, path, got, b, status, scimType)
	}
}

type listResponse struct {
	TotalResults int
	StartIndex   int
	ItemsPerPage int
	Resources    []json.RawMessage
}

func (h *harness) createUser(name string, roles ...string) scim.User {
	h.t.Helper()
	u := map[string]any{"schemas": []string{scim.SchemaUser}, "userName": name, "externalId": "ext-" + name,
		"password": goodPassword, "name": map[string]string{"givenName": "Ignored"},
		scim.SchemaEnterprise: map[string]string{"department": "cardiology"}}
	var rs []map[string]string
	for _, r := range roles {
		rs = append(rs, map[string]string{"value": r})
	}
	u["roles"] = rs
	var got scim.User
	h.must(201, "POST", "/scim/v2/Users", u, &got)
	return got
}

func (h *harness) account(id string) *phivault.Account {
	h.t.Helper()
	a, err := h.db.AccountByID(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func TestUsers_Create(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.kildare", "physician")
	if u.ID == "" || u.UserName != "dr.kildare" || u.ExternalID != "ext-dr.kildare" || u.Active == nil || !*u.Active ||
		len(u.Roles) != 1 || u.Roles[0].Value != "physician" || u.Enterprise == nil || u.Enterprise.Department != "cardiology" ||
		u.Meta.Location != "https://vault.example.org/scim/v2/Users/"+u.ID || u.Password != "" {
		t.Fatalf("created %+v", u)
	}
	a := h.account(u.ID)
	if a.Kind != phivault.PrincipalStaff || a.Department != "cardiology" || a.ExternalID != "ext-dr.kildare" {
		t.Errorf("stored %+v", a)
	}
	if ok, _, _ := identity.NewHasher().Verify(a.PasswordHash, goodPassword); !ok {
		t.Error("stored password does not verify")
	}
	h.wantError(409, "uniqueness", "POST", "/scim/v2/Users", map[string]any{"userName": "dr.kildare"})
	h.wantError(400, "invalidSyntax", "POST", "/scim/v2/Users", "{")
	h.wantError(400, "invalidValue", "POST", "/scim/v2/Users", map[string]any{"userName": ""})
	h.wantError(400, "invalidValue", "POST", "/scim/v2/Users", map[string]any{"userName": "x2", "roles": []map[string]string{{"value": "surgeon"}}})
	h.wantError(400, "invalidValue", "POST", "/scim/v2/Users", map[string]any{"userName": "x3", "password": "short"})
	h.wantError(400, "invalidValue", "POST", "/scim/v2/Users", map[string]any{"userName": "x4",
		scim.SchemaEnterprise: map[string]string{"department": strings.Repeat("d", 257)}})
	h.wantError(400, "invalidValue", "POST", "/scim/v2/Users", map[string]any{"userName": "x5", "externalId": "ext\x00"})
	accs, _ := h.db.Accounts(context.Background())
	if len(accs) != 1 {
		t.Errorf("%d accounts after bad creates, want 1", len(accs))
	}
	for _, s := range []string{"$argon2id", goodPassword, a.PasswordHash} {
		if strings.Contains(h.bodies.String(), s) {
			t.Errorf("a response holds a secret (%.10s...)", s)
		}
	}
}

func TestUsers_ListFilterPage(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"alice", "bob", "carol", "dave", "erin"} {
		h.createUser(n, "nurse")
	}
	h.createUser("frank", "billing")
	var lr listResponse
	h.must(200, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "Bob"`), nil, &lr)
	if lr.TotalResults != 1 || len(lr.Resources) != 1 || !strings.Contains(string(lr.Resources[0]), `"userName":"bob"`) {
		t.Errorf("userName eq Bob (case-insensitive) = %+v", lr)
	}
	h.must(200, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`externalId eq "ext-carol" or (roles.value eq "billing" and active eq true)`), nil, &lr)
	if lr.TotalResults != 2 {
		t.Errorf("or/and filter found %d, want 2", lr.TotalResults)
	}
	h.must(200, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`not (userName sw "a") and emails pr`), nil, &lr)
	if lr.TotalResults != 0 {
		t.Errorf("emails pr found %d, want 0", lr.TotalResults)
	}
	h.must(200, "GET", "/scim/v2/Users?startIndex=2&count=2", nil, &lr)
	if lr.TotalResults != 6 || lr.StartIndex != 2 || lr.ItemsPerPage != 2 || len(lr.Resources) != 2 {
		t.Errorf("page = %d total, start %d, %d per page", lr.TotalResults, lr.StartIndex, lr.ItemsPerPage)
	}
	h.must(200, "GET", "/scim/v2/Users?startIndex=6&count=10", nil, &lr)
	if len(lr.Resources) != 1 {
		t.Errorf("last page has %d, want 1", len(lr.Resources))
	}
	h.must(200, "GET", "/scim/v2/Users?count=0", nil, &lr)
	if lr.TotalResults != 6 || len(lr.Resources) != 0 {
		t.Errorf("count=0: %+v", lr)
	}
	for _, f := range []string{`userName eq`, `userName eq "a" and`, `emails[type eq "work"]`, `nosuch eq "x"`, `active eq "yes"`, `userName gt "a"`} {
		h.wantError(400, "invalidFilter", "GET", "/scim/v2/Users?filter="+url.QueryEscape(f), nil)
	}
	h.wantError(400, "invalidValue", "GET", "/scim/v2/Users?count=x", nil)
}

func TestUsers_ReplacePatchDelete(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.welby", "physician")
	var got scim.User
	h.must(200, "GET", "/scim/v2/Users/"+u.ID, nil, &got)
	if got.UserName != "dr.welby" {
		t.Fatalf("GET = %+v", got)
	}
	h.wantError(404, "", "GET", "/scim/v2/Users/nope", nil)

	// PUT replaces; a role change revokes.
	h.must(200, "PUT", "/scim/v2/Users/"+u.ID, map[string]any{"userName": "dr.welby", "active": true,
		"roles": []map[string]string{{"value": "physician"}, {"value": "privacy-officer"}}}, &got)
	if a := h.account(u.ID); !slices.Equal(a.Roles, []string{"physician", "privacy-officer"}) || a.Department != "" || h.revoker.Count(u.ID) != 1 {
		t.Errorf("after PUT: roles %v department %q, %d revocations", a.Roles, a.Department, h.revoker.Count(u.ID))
	}
	patch := func(ops ...map[string]any) map[string]any {
		return map[string]any{"schemas": []string{scim.SchemaPatch}, "Operations": ops}
	}
	// Azure-style: op in capitals, "False" as a string.
	h.must(200, "PATCH", "/scim/v2/Users/"+u.ID, patch(map[string]any{"op": "Replace", "path": "active", "value": "False"}), &got)
	if a := h.account(u.ID); a.Status != phivault.AccountSuspended || *got.Active || h.revoker.Count(u.ID) != 2 {
		t.Errorf("after active=false: status %s, %d revocations, want suspended and 2", a.Status, h.revoker.Count(u.ID))
	}
	h.must(200, "PATCH", "/scim/v2/Users/"+u.ID, patch(
		map[string]any{"op": "replace", "value": map[string]any{"active": true, scim.SchemaEnterprise: map[string]string{"department": "oncology"}}},
		map[string]any{"op": "remove", "path": `roles[value eq "privacy-officer"]`},
		map[string]any{"op": "add", "path": "roles", "value": []map[string]string{{"value": "nurse"}}},
		map[string]any{"op": "replace", "path": "name.givenName", "value": "ignored"},
		map[string]any{"op": "replace", "path": scim.SchemaEnterprise + ":organization", "value": "General"},
	), &got)
	if a := h.account(u.ID); a.Status != "active" || a.Department != "oncology" || a.Organization != "General" || !slices.Equal(a.Roles, []string{"physician", "nurse"}) {
		t.Errorf("after patch: %s %q %q %v", a.Status, a.Department, a.Organization, a.Roles)
	}
	version := h.account(u.ID).Version
	for _, bad := range []map[string]any{
		patch(map[string]any{"op": "replace", "path": "active", "value": "maybe"}),
		patch(map[string]any{"op": "add", "path": "roles", "value": []map[string]string{{"value": "surgeon"}}}),
		patch(map[string]any{"op": "frobnicate", "path": "active", "value": true}),
		patch(map[string]any{"op": "replace", "path": "bogusAttr", "value": "x"}),
		patch(map[string]any{"op": "remove"}),
		{"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}}}, // no schema
	} {
		if status, b := h.do(scimToken, "PATCH", "/scim/v2/Users/"+u.ID, bad); status != 400 {
			t.Errorf("PATCH %v = %d %s, want 400", bad, status, b)
		}
	}
	if a := h.account(u.ID); a.Version != version || a.Status != "active" {
		t.Errorf("bad patches changed the account: v%d→v%d %s", version, a.Version, a.Status)
	}

	before := h.revoker.Count(u.ID)
	h.must(204, "DELETE", "/scim/v2/Users/"+u.ID, nil, nil)
	if a := h.account(u.ID); a.Status != phivault.AccountDeprovisioned || h.revoker.Count(u.ID) != before+1 {
		t.Errorf("after DELETE: %s, %d revocations", a.Status, h.revoker.Count(u.ID)-before)
	}
	h.wantError(404, "", "GET", "/scim/v2/Users/"+u.ID, nil)
	h.wantError(404, "", "DELETE", "/scim/v2/Users/"+u.ID, nil)
	var lr listResponse
	h.must(200, "GET", "/scim/v2/Users", nil, &lr)
	if lr.TotalResults != 0 {
		t.Errorf("deprovisioned account still listed")
	}

	// Every change is audited with ids only.
	var n int
	for _, e := range auditEntries(t, h) {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "dr.welby") || strings.Contains(string(b), "oncology") {
			t.Errorf("audit entry holds personal data: %s", b)
		}
		if e.TargetID == u.ID && e.Action == phivault.ActionAccountChange && e.Actor == "scim" && e.Outcome == "ok" {
			n++
		}
	}
	if n != 5 { // POST, PUT, two PATCHes, DELETE
		t.Errorf("%d ok audit entries for the account, want 5", n)
	}
}

func auditEntries(t *testing.T, h *harness) []*phivault.AuditEntry {
	t.Helper()
	return storetest.AuditEntries(t, h.log, h.db)
}

func TestGroups(t *testing.T) {
	h := newHarness(t)
	a := h.createUser("amy", "nurse")
	b := h.createUser("ben")
	var lr listResponse
	h.must(200, "GET", "/scim/v2/Groups", nil, &lr)
	if lr.TotalResults != 6 {
		t.Errorf("%d groups, want the 6 default roles", lr.TotalResults)
	}
	h.must(200, "GET", "/scim/v2/Groups?filter="+url.QueryEscape(`displayName eq "nurse"`), nil, &lr)
	if lr.TotalResults != 1 || !strings.Contains(string(lr.Resources[0]), a.ID) {
		t.Errorf("nurse group = %+v", lr)
	}
	patch := func(ops ...map[string]any) map[string]any {
		return map[string]any{"schemas": []string{scim.SchemaPatch}, "Operations": ops}
	}
	var g scim.Group
	h.must(200, "PATCH", "/scim/v2/Groups/nurse", patch(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": b.ID}}}), &g)
	if len(g.Members) != 2 || !slices.Contains(h.account(b.ID).Roles, "nurse") || h.revoker.Count(b.ID) != 1 {
		t.Errorf("after add: %d members, ben's roles %v, %d revocations", len(g.Members), h.account(b.ID).Roles, h.revoker.Count(b.ID))
	}
	h.must(200, "PATCH", "/scim/v2/Groups/nurse", patch(map[string]any{"op": "remove", "path": `members[value eq "` + a.ID + `"]`}), &g)
	if len(g.Members) != 1 || slices.Contains(h.account(a.ID).Roles, "nurse") || h.revoker.Count(a.ID) != 1 {
		t.Errorf("after remove: %d members, amy's roles %v", len(g.Members), h.account(a.ID).Roles)
	}
	// Azure-style add without a path.
	h.must(200, "PATCH", "/scim/v2/Groups/billing", patch(map[string]any{"op": "add", "value": map[string]any{"members": []map[string]string{{"value": a.ID}}}}), &g)
	if !slices.Contains(h.account(a.ID).Roles, "billing") {
		t.Errorf("amy's roles %v, want billing", h.account(a.ID).Roles)
	}
	h.must(200, "PUT", "/scim/v2/Groups/billing", map[string]any{"displayName": "billing", "members": []map[string]string{{"value": b.ID}}}, &g)
	if slices.Contains(h.account(a.ID).Roles, "billing") || !slices.Contains(h.account(b.ID).Roles, "billing") {
		t.Errorf("after PUT: amy %v, ben %v", h.account(a.ID).Roles, h.account(b.ID).Roles)
	}
	h.wantError(400, "invalidValue", "PATCH", "/scim/v2/Groups/nurse", patch(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "nobody"}}}))
	h.wantError(400, "mutability", "PUT", "/scim/v2/Groups/billing", map[string]any{"displayName": "finance"})
	h.wantError(404, "", "GET", "/scim/v2/Groups/surgeon", nil)
	h.wantError(403, "mutability", "POST", "/scim/v2/Groups", map[string]any{"displayName": "x"})
	h.wantError(403, "mutability", "DELETE", "/scim/v2/Groups/nurse", nil)
}

func TestAuthorization(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.ok", "physician")
	for _, tc := range []struct {
		token  string
		status int
	}{{"", 401}, {"wrong", 401}, {nurseToken, 403}, {secAdminToken, 403}, {bootstrapToken, 403}} {
		for _, r := range []struct{ method, path string }{
			{"GET", "/scim/v2/Users"}, {"POST", "/scim/v2/Users"}, {"PATCH", "/scim/v2/Users/" + u.ID},
			{"DELETE", "/scim/v2/Users/" + u.ID}, {"GET", "/scim/v2/Groups"}, {"GET", "/scim/v2/ServiceProviderConfig"},
		} {
			if status, b := h.do(tc.token, r.method, r.path, `{"userName":"x"}`); status != tc.status || !strings.Contains(string(b), scim.SchemaError) {
				t.Errorf("token %q %s %s = %d %s, want %d", tc.token, r.method, r.path, status, b, tc.status)
			}
		}
	}
	if a := h.account(u.ID); a.Status != "active" || a.Version != 1 {
		t.Error("refused requests changed the account")
	}
	accs, _ := h.db.Accounts(context.Background())
	if len(accs) != 1 {
		t.Errorf("%d accounts, want 1", len(accs))
	}
}

// TestTrust pins the trust SCIM rests on (package doc, "Trust"): the
// identity provider's token creates an account with a clinical role, and
// grants one, at once, with no second admin; and only that token: a
// security admin or the bootstrap token, who would need a second admin
// through the admin API, is refused here (TestAuthorization).
func TestTrust(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.idp", "physician")
	if a := h.account(u.ID); !slices.Equal(a.Roles, []string{"physician"}) || a.Status != phivault.AccountActive {
		t.Fatalf("SCIM-created account %+v, want an active physician at once", a)
	}
	h.must(200, "PATCH", "/scim/v2/Groups/nurse", map[string]any{"schemas": []string{scim.SchemaPatch},
		"Operations": []map[string]any{{"op": "add", "path": "members", "value": []map[string]string{{"value": u.ID}}}}}, nil)
	if a := h.account(u.ID); !slices.Contains(a.Roles, "nurse") {
		t.Errorf("roles %v after a group add, want nurse granted at once", a.Roles)
	}
}

func TestDiscovery(t *testing.T) {
	h := newHarness(t)
	var spc struct {
		Patch  struct{ Supported bool }
		Filter struct {
			Supported  bool
			MaxResults int
		}
		AuthenticationSchemes []struct{ Type string }
	}
	h.must(200, "GET", "/scim/v2/ServiceProviderConfig", nil, &spc)
	if !spc.Patch.Supported || !spc.Filter.Supported || spc.Filter.MaxResults != scim.MaxCount || len(spc.AuthenticationSchemes) != 1 {
		t.Errorf("ServiceProviderConfig = %+v", spc)
	}
	var lr listResponse
	h.must(200, "GET", "/scim/v2/ResourceTypes", nil, &lr)
	if lr.TotalResults != 2 {
		t.Errorf("%d resource types, want 2", lr.TotalResults)
	}
	h.must(200, "GET", "/scim/v2/Schemas", nil, &lr)
	if lr.TotalResults != 3 || !strings.Contains(string(lr.Resources[0]), scim.SchemaUser) {
		t.Errorf("schemas = %+v", lr)
	}
	h.wantError(404, "", "GET", "/scim/v2/Bulk", nil)
}
