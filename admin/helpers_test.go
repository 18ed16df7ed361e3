package admin_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/api"
)

// send sends a request with body to url, with "Authorization: Bearer
// token" unless token is "", and returns the response (its body read and
// closed) and the body.
func send(t *testing.T, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// bootstrapAuth accepts token as the bootstrap admin token, with the
// bootstrap principal, as serve wires it.
func bootstrapAuth(token string) *api.TokenAuthenticator {
	return &api.TokenAuthenticator{Hash: api.HashToken(token), Actor: "admin", Principal: access.BootstrapPrincipal("admin")}
}
