package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/policy"
)

// tokens authenticates one fixed token per principal.
type tokens map[string]*phivault.Principal

func (t tokens) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p, ok := t[token]
	if !ok {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "The bearer token is not valid.")
	}
	return phivault.WithPrincipal(api.WithActor(ctx, p.ID), p), nil
}

type auditSink struct{ entries []*phivault.AuditEntry }

func (s *auditSink) Append(_ context.Context, es ...*phivault.AuditEntry) error {
	s.entries = append(s.entries, es...)
	return nil
}

func TestAccessHandler(t *testing.T) {
	v, _ := vaulttest.Vault(t)
	pat, _, err := v.Create(context.Background(), "Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Doe"}]}`), phivault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	authz, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := access.NewRecordService(v, authz)
	sink := &auditSink{}
	rs.Log = sink
	now := time.Now()
	trained := now.Add(24 * time.Hour)
	toks := tokens{
		"doc":   {ID: "u-doc", Kind: phivault.PrincipalStaff, Roles: []string{"physician"}, AuthTime: now, TrainingValidUntil: trained},
		"stale": {ID: "u-stale", Kind: phivault.PrincipalStaff, Roles: []string{"physician"}, AuthTime: now.Add(-time.Hour), TrainingValidUntil: trained},
		"po":    {ID: "u-po", Kind: phivault.PrincipalStaff, Roles: []string{"privacy-officer"}, AuthTime: now, TrainingValidUntil: trained},
	}
	srv := httptest.NewServer(admin.NewAccessHandler(admin.AccessOptions{Authenticator: toks, Access: rs.AdminAPI()}))
	defer srv.Close()
	do := func(method, path, token, body string) (*http.Response, string) {
		t.Helper()
		return send(t, method, srv.URL+path, token, body)
	}
	bg := `{"patient":"` + pat.ID + `","purpose":"ETREAT","reason":"cardiac arrest in the lobby"}`
	for _, tc := range []struct {
		method, path, token, body string
		status                    int
		want                      string
	}{
		{"POST", "/admin/break-glass", "", bg, 401, "Authentication required"},
		{"POST", "/admin/break-glass", "stale", bg, 401, "log in again"},
		{"POST", "/admin/break-glass", "doc", `{"patient":"x","bogus":1}`, 400, "documented fields"},
		{"POST", "/admin/break-glass", "doc", `{"patient":"` + pat.ID + `","purpose":"ETREAT"}`, 400, "reason is required"},
		{"GET", "/admin/break-glass/queue", "doc", "", 403, "privacy officers"},
		{"POST", "/admin/break-glass", "doc", bg, 201, `"until"`},
		{"POST", "/admin/break-glass", "po", bg, 403, "may not break the glass"},
		{"POST", "/admin/policy/explain", "doc", `{"user":"u-po","action":"read","resource":"Patient/` + pat.ID + `"}`, 403, "security admins"},
	} {
		resp, body := do(tc.method, tc.path, tc.token, tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s as %q = %d %s, want %d with %q", tc.method, tc.path, tc.token, resp.StatusCode, body, tc.status, tc.want)
		}
		if tc.token == "stale" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
			t.Errorf("stale login: WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp, body := do("GET", "/admin/break-glass/queue", "po", "")
	var q struct {
		Accesses []access.BreakGlassAccess `json:"accesses"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &q) != nil || len(q.Accesses) != 1 || q.Accesses[0].Principal != "u-doc" {
		t.Fatalf("queue = %d %s", resp.StatusCode, body)
	}
	resp, body = do("POST", "/admin/break-glass/review", "po", `{"record":"`+q.Accesses[0].Record+`","verdict":"appropriate"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"reviewed":true`) {
		t.Fatalf("review = %d %s", resp.StatusCode, body)
	}
	resp, body = do("GET", "/admin/break-glass/queue", "po", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"accesses":[]`) {
		t.Fatalf("queue after review = %d %s", resp.StatusCode, body)
	}
	for _, e := range sink.entries {
		if b, _ := json.Marshal(e); strings.Contains(string(b), "cardiac") {
			t.Fatalf("audit entry holds the reason: %s", b)
		}
	}
}
