package admin_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
)

type fakeRotator struct {
	fakeShredder
	rotated []string
}

func (f *fakeRotator) RotatePatientKey(ctx context.Context, id string, progress func(done, total int)) error {
	switch id {
	case "gone":
		return phivault.ErrShredded
	case "p1":
	default:
		return phivault.ErrNotFound
	}
	if api.ActorFromContext(ctx) != "admin" {
		return phivault.Errorf(phivault.EFORBIDDEN, "no actor")
	}
	progress(100, 120)
	progress(120, 120)
	f.rotated = append(f.rotated, id)
	return nil
}

func TestHandler_rotatePatientKey(t *testing.T) {
	rec := &fakeRotator{}
	auth := bootstrapAuth("secret")
	srv := httptest.NewServer(admin.NewHandler(admin.Options{Authenticator: auth, Records: rec}))
	defer srv.Close()
	// Records that cannot rotate: no such operation.
	plain := httptest.NewServer(admin.NewHandler(admin.Options{Authenticator: auth, Records: &fakeShredder{}}))
	defer plain.Close()
	do := func(base, token, path string) (int, string) {
		t.Helper()
		resp, body := send(t, "POST", base+path, token, "")
		return resp.StatusCode, body
	}
	for _, tc := range []struct {
		base, token, path string
		status            int
		body              string
	}{
		{srv.URL, "", "/admin/patients/p1/$rotate-key", 401, "Authentication required"},
		{srv.URL, "secret", "/admin/patients/nope/$rotate-key", 404, "not found"},
		{srv.URL, "secret", "/admin/patients/gone/$rotate-key", 410, "erased"},
		{plain.URL, "secret", "/admin/patients/p1/$rotate-key", 404, "No such admin operation"},
		{srv.URL, "secret", "/admin/patients/p1/$rotate-key", 200, "Patient/p1 has a new data key: 120 stored versions were re-encrypted"},
	} {
		status, body := do(tc.base, tc.token, tc.path)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("POST %s = %d %s, want %d containing %q", tc.path, status, body, tc.status, tc.body)
		}
	}
	if len(rec.rotated) != 1 {
		t.Errorf("rotated %v, want [p1] once", rec.rotated)
	}
}
