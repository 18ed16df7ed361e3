package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
)

type fakeShredder struct{ shredded []string }

func (f *fakeShredder) Shred(ctx context.Context, id string) (time.Time, error) {
	if id == "p2" { // shredded; the erasure of the old key bytes waits
		f.shredded = append(f.shredded, id)
		return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), fmt.Errorf("postgres: erase keys: lock timeout: %w", phivault.ErrErasePending)
	}
	if id != "p1" {
		return time.Time{}, phivault.ErrNotFound
	}
	if api.ActorFromContext(ctx) != "admin" {
		return time.Time{}, phivault.Errorf(phivault.EFORBIDDEN, "no actor")
	}
	f.shredded = append(f.shredded, id)
	return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), nil
}

func TestHandler_shred(t *testing.T) {
	rec := &fakeShredder{}
	h := admin.NewHandler(admin.Options{
		Authenticator: bootstrapAuth("secret"),
		Records:       rec,
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, token string) (int, string) {
		t.Helper()
		resp, body := send(t, method, srv.URL+path, token, "")
		return resp.StatusCode, body
	}
	for _, tc := range []struct {
		method, path, token string
		status              int
		body                string
	}{
		{"POST", "/admin/patients/p1/$shred", "", 401, "Authentication required"},
		{"POST", "/admin/patients/p1/$shred", "wrong", 401, "not valid"},
		{"POST", "/admin/patients/nope/$shred", "secret", 404, "not found"},
		{"POST", "/admin/patients/p1/$erase", "secret", 404, "No such admin operation"},
		{"GET", "/admin/patients/p1/$shred", "secret", 405, ""},
		{"POST", "/admin/keys/$rotate", "secret", 415, "cannot be rotated"},
		{"POST", "/admin/patients/p1/$shred", "secret", 200, "Patient/p1 was crypto-shredded at 2025-01-02T03:04:05Z"},
		{"POST", "/admin/patients/p2/$shred", "secret", 200, "Patient/p2 was crypto-shredded at 2025-01-02T03:04:05Z; its records can no longer be read. Erasing the destroyed key's old bytes from the database files is pending"},
	} {
		status, body := do(tc.method, tc.path, tc.token)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s = %d %s, want %d containing %q", tc.method, tc.path, status, body, tc.status, tc.body)
		}
		if status != 405 && !json.Valid([]byte(body)) {
			t.Errorf("%s %s: body is not JSON: %s", tc.method, tc.path, body)
		}
	}
	if len(rec.shredded) != 2 {
		t.Errorf("shredded %v, want [p1 p2]", rec.shredded)
	}
}
