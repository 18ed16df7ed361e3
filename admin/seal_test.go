package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
)

// fakeVault accepts one passphrase.
type fakeVault struct {
	pass   string
	sealed bool
	tries  int
}

func (v *fakeVault) Unseal(ctx context.Context, secret []byte) error {
	v.tries++
	if string(secret) != v.pass {
		return &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Wrong passphrase for the key file."}
	}
	v.sealed = false
	return nil
}

func (v *fakeVault) Seal(ctx context.Context) error {
	v.sealed = true
	return nil
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestHandler_sealUnseal(t *testing.T) {
	const right, wrong = "right horse battery", "wrong-guess-4711"
	vault := &fakeVault{pass: right, sealed: true}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var logs syncBuffer
	h := admin.NewHandler(admin.Options{
		Authenticator: bootstrapAuth("secret"),
		Unsealer:      vault,
		Logger:        slog.New(slog.NewJSONHandler(&logs, nil)),
		Now:           func() time.Time { return now },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(path, token, body string) (int, http.Header, string) {
		t.Helper()
		resp, b := send(t, http.MethodPost, srv.URL+path, token, body)
		if !json.Valid([]byte(b)) {
			t.Errorf("POST %s: body is not JSON: %s", path, b)
		}
		return resp.StatusCode, resp.Header, b
	}
	pass := func(p string) string { return `{"passphrase":"` + p + `"}` }
	want := func(what string, status int, body string, wantStatus int, wantBody string) {
		t.Helper()
		if status != wantStatus || !strings.Contains(body, wantBody) {
			t.Errorf("%s = %d %s, want %d containing %q", what, status, body, wantStatus, wantBody)
		}
		if strings.Contains(body, right) || strings.Contains(body, wrong) {
			t.Errorf("%s: the answer shows the passphrase: %s", what, body)
		}
	}

	status, _, body := do("/admin/$unseal", "", pass(right))
	want("unseal without token", status, body, 401, "Authentication required")
	status, _, body = do("/admin/$unseal", "secret", `{"passphrase":`)
	want("unseal with bad JSON", status, body, 400, "must be JSON")
	status, _, body = do("/admin/$unseal", "secret", `{"pass":"x"}`)
	want("unseal with unknown field", status, body, 400, "must be JSON")

	status, _, body = do("/admin/$unseal", "secret", pass(wrong))
	want("unseal with wrong passphrase", status, body, 403, "not accepted")
	if strings.Contains(body, "Wrong passphrase") {
		t.Errorf("the refusal passes on the keyring's reason: %s", body)
	}
	// At once again: throttled, and the vault is not even asked.
	tries := vault.tries
	status, hdr, body := do("/admin/$unseal", "secret", pass(right))
	want("unseal right after a refusal", status, body, 429, "try again in 1 s")
	if hdr.Get("Retry-After") != "1" || vault.tries != tries {
		t.Errorf("throttled attempt: Retry-After %q, vault asked %d times; want 1 and not asked", hdr.Get("Retry-After"), vault.tries-tries)
	}
	// The delay grows with every refusal in a row.
	now = now.Add(admin.UnsealBackoff)
	status, _, body = do("/admin/$unseal", "secret", pass(wrong))
	want("second wrong passphrase", status, body, 403, "not accepted")
	now = now.Add(admin.UnsealBackoff)
	status, _, body = do("/admin/$unseal", "secret", pass(right))
	want("unseal 1 s after the second refusal (2 s delay)", status, body, 429, "try again in 1 s")
	now = now.Add(admin.UnsealBackoff)
	status, _, body = do("/admin/$unseal", "secret", pass(right))
	want("unseal with the right passphrase", status, body, 200, "unsealed")
	if vault.sealed {
		t.Error("vault still sealed after a successful unseal")
	}
	// Success resets the backoff.
	status, _, body = do("/admin/$unseal", "secret", pass(right))
	want("unseal again", status, body, 200, "unsealed")

	status, _, body = do("/admin/$seal", "", "")
	want("seal without token", status, body, 401, "Authentication required")
	if vault.sealed {
		t.Error("sealed without a token")
	}
	status, _, body = do("/admin/$seal", "secret", "")
	want("seal", status, body, 200, "sealed")
	if !vault.sealed {
		t.Error("vault not sealed after $seal")
	}

	l := logs.String()
	if !strings.Contains(l, "admin: unseal refused") || !strings.Contains(l, "admin: vault sealed") {
		t.Errorf("log lacks the refusal or the seal:\n%s", l)
	}
	if strings.Contains(l, right) || strings.Contains(l, wrong) {
		t.Errorf("log shows a passphrase:\n%s", l)
	}
}

func TestHandler_sealUnsupported(t *testing.T) {
	h := admin.NewHandler(admin.Options{
		Authenticator: bootstrapAuth("secret"),
	})
	for _, path := range []string{"/admin/$seal", "/admin/$unseal"} {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.Header.Set("Authorization", "Bearer secret")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnsupportedMediaType {
			t.Errorf("POST %s without an Unsealer = %d %s, want 415", path, rec.Code, rec.Body)
		}
	}
}
