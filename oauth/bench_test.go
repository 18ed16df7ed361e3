package oauth_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/mock"
	"github.com/phivault/phivault/oauth"
)

// benchSessions returns Sessions holding n sessions and one more, whose
// access token it returns.
func benchSessions(b *testing.B, n int) (*oauth.Sessions, string) {
	b.Helper()
	s := oauth.NewSessions()
	s.Now = func() time.Time { return t0 }
	for i := range n {
		if _, err := s.Start(phivault.Principal{ID: "acc-" + strconv.Itoa(i), Kind: phivault.PrincipalStaff}, true); err != nil {
			b.Fatal(err)
		}
	}
	out, err := s.Start(phivault.Principal{ID: "acc-bench", Kind: phivault.PrincipalStaff, Roles: []string{"physician"}, SMART: true, Scopes: []string{"user/*.rs"}}, true)
	if err != nil {
		b.Fatal(err)
	}
	return s, out.AccessToken
}

// BenchmarkSessions_Authenticate measures the token lookup with 10,000
// live sessions.
func BenchmarkSessions_Authenticate(b *testing.B) {
	s, tok := benchSessions(b, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessions_AuthenticateParallel measures concurrent lookups.
func BenchmarkSessions_AuthenticateParallel(b *testing.B) {
	s, tok := benchSessions(b, 10000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := s.Authenticate(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// acceptAll authenticates every token: the read path without the cost of
// authentication.
type acceptAll struct{}

func (acceptAll) Authenticate(ctx context.Context, _ string) (context.Context, error) {
	return api.WithActor(ctx, "bench"), nil
}

// BenchmarkRead compares the FHIR read-by-id path (api.Handler on an
// in-memory service) with no authentication cost, the bootstrap token, and
// an OAuth session token: the session lookup must keep the read at 80% or
// more of its unauthenticated rate.
func BenchmarkRead(b *testing.B) {
	res := &phivault.Resource{Type: "Patient", ID: "p1", Version: 1, LastUpdated: t0, Compartment: "p1",
		Body: []byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"name":[{"family":"Smith"}]}`)}
	sessions, tok := benchSessions(b, 10000)
	for _, bc := range []struct {
		name  string
		auth  api.Authenticator
		token string
	}{
		{"no-auth", acceptAll{}, "anything"},
		{"bootstrap-token", &api.TokenAuthenticator{Hash: api.HashToken("bootstrap-token-value"), Actor: "admin"}, "bootstrap-token-value"},
		{"session-token", sessions, tok},
	} {
		b.Run(bc.name, func(b *testing.B) {
			svc := &mock.RecordService{ReadFn: func(context.Context, string, string) (*phivault.Resource, error) { return res, nil }}
			h := api.NewHandler(svc, api.Options{BaseURL: "https://vault.test/fhir", Authenticator: bc.auth, Logger: slog.New(slog.DiscardHandler)})
			r := httptest.NewRequest("GET", "/fhir/Patient/p1", nil)
			r.Header.Set("Authorization", "Bearer "+bc.token)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
