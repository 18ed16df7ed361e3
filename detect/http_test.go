package detect_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// authFunc is an Authenticator made of a function.
type authFunc func(ctx context.Context, token string) (context.Context, error)

func (f authFunc) Authenticate(ctx context.Context, token string) (context.Context, error) {
	return f(ctx, token)
}

// TestGuardChallenge checks that the security API answers a request it
// cannot authenticate with 401 and the RFC 6750 challenge of the other
// bearer routes, and sends no challenge when the token was accepted or the
// authenticator failed for another reason.
func TestGuardChallenge(t *testing.T) {
	storeDown := authFunc(func(context.Context, string) (context.Context, error) {
		return nil, phivault.Errorf(phivault.EUNAVAILABLE, "The account store is unavailable.")
	})
	tests := []struct {
		name          string
		auth          detect.Authenticator
		authorization string
		wantStatus    int
		wantChallenge string
		wantBody      string
	}{
		{"no token", alertsPrincipals, "", 401, `Bearer realm="phivault"`, "A bearer token is required."},
		{"other scheme", alertsPrincipals, "Basic b2ZmaWNlcjp4", 401, `Bearer realm="phivault"`, "A bearer token is required."},
		{"unknown token", alertsPrincipals, "Bearer stolen", 401, `Bearer realm="phivault", error="invalid_token"`, "The bearer token is not valid."},
		{"no authenticator", nil, "Bearer officer", 401, `Bearer realm="phivault", error="invalid_token"`, "accepts no tokens"},
		{"authenticator down", storeDown, "Bearer officer", 503, "", "unavailable"},
		{"not an auditor", alertsPrincipals, "Bearer nurse", 403, "", "privacy officers"},
		{"auditor", alertsPrincipals, "Bearer officer", 200, "", `"cursor"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := detect.NewHandler(detect.HandlerOptions{
				Store: detect.NewMemStore(), Auth: tt.auth, Log: &alertsLog{},
				Now: func() time.Time { return alertsT0 },
			})
			r := httptest.NewRequest(http.MethodGet, "/security/detector", nil)
			if tt.authorization != "" {
				r.Header.Set("Authorization", tt.authorization)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("GET /security/detector = %d %s, want %d with %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
		})
	}
}
