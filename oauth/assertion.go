package oauth

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/onetime"
)

const (
	// assertionType is the only client_assertion_type accepted (RFC 7523).
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxAssertion bounds the size of a client assertion.
	maxAssertion = 16 << 10
	// assertionSkew is the clock skew allowed for nbf and iat; exp gets none.
	assertionSkew = 30 * time.Second
)

// assertionAlgs are the signature algorithms SMART Backend Services allows.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// authenticateClient checks the request's private_key_jwt client assertion
// (SMART Backend Services, RFC 7523) and returns the active client that
// signed it: iss and sub are its id, aud the token endpoint, exp present
// and at most five minutes ahead, jti never seen before, signed RS384 or
// ES384 by a key of the client's registered JWKS.
func (s *Server) authenticateClient(r *http.Request) (*phivault.Client, *oauthError) {
	if r.PostFormValue("client_assertion_type") != assertionType {
		return nil, errf("invalid_client", "client_assertion_type must be "+assertionType+".")
	}
	raw := r.PostFormValue("client_assertion")
	if raw == "" || len(raw) > maxAssertion {
		return nil, errf("invalid_client", "client_assertion is required.")
	}
	tok, err := jwt.ParseSigned(raw, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, errf("invalid_client", "client_assertion must be a JWT signed with RS384 or ES384.")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer == "" {
		return nil, errf("invalid_client", "client_assertion has no iss.")
	}
	id := unverified.Issuer
	if cid := r.PostFormValue("client_id"); cid != "" && cid != id {
		return nil, errf("invalid_client", "client_id does not match the assertion's iss.")
	}
	c, err := s.opts.Clients.ClientByID(r.Context(), id)
	if phivault.ErrorCode(err) == phivault.ENOTFOUND || err == nil && (c.Status != phivault.AccountActive || c.Kind != phivault.ClientBackend) {
		return nil, errf("invalid_client", "The client is unknown, suspended, or not a backend client.")
	} else if err != nil {
		s.opts.Logger.Error("oauth: client lookup", "error", err.Error())
		return nil, errf("temporarily_unavailable", "Try again later.")
	}
	var claims jwt.Claims
	if !verifyWithJWKS(tok, c.JWKS, &claims) {
		return nil, errf("invalid_client", "The client_assertion signature does not verify with the client's registered keys.")
	}
	now := s.opts.Now()
	exp := jwt.Expected{Issuer: c.ID, Subject: c.ID, AnyAudience: jwt.Audience{s.tokenURL(r)}, Time: now}
	if err := claims.ValidateWithLeeway(exp, assertionSkew); err != nil {
		return nil, errf("invalid_client", "The client_assertion's iss, sub, aud, exp, nbf or iat is wrong.")
	}
	if claims.Expiry == nil || !now.Before(claims.Expiry.Time()) || claims.Expiry.Time().After(now.Add(maxAssertionTTL)) {
		return nil, errf("invalid_client", "The client_assertion must expire, within five minutes.")
	}
	if claims.ID == "" || len(claims.ID) > 256 {
		return nil, errf("invalid_client", "The client_assertion needs a jti.")
	}
	if err := s.firstUse(c.ID, claims.ID, claims.Expiry.Time()); err != nil {
		return nil, err
	}
	return c, nil
}

// verifyWithJWKS verifies tok with the key of jwks its kid names, or with
// each key if it names none, and decodes its claims into claims.
func verifyWithJWKS(tok *jwt.JSONWebToken, jwks []byte, claims *jwt.Claims) bool {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return false
	}
	hdr := tok.Headers[0]
	keys := set.Keys
	if hdr.KeyID != "" {
		keys = set.Key(hdr.KeyID)
	}
	for _, k := range keys {
		if !k.IsPublic() || k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if !slices.Contains(assertionAlgs, jose.SignatureAlgorithm(hdr.Algorithm)) {
			return false
		}
		if err := tok.Claims(k.Key, claims); err == nil {
			return true
		}
	}
	return false
}

// firstUse records the assertion id jti of client until exp, and returns
// an error if it was seen before or if client's own cache is full of live
// assertions: it refuses rather than forgets. Each client has its own
// cache, made once its assertion verified, so only registered clients
// create one and a flood by one client leaves the others unaffected.
func (s *Server) firstUse(client, jti string, exp time.Time) *oauthError {
	now := s.opts.Now()
	s.mu.Lock()
	seen := s.jtis[client]
	if seen == nil {
		seen = onetime.New[struct{}](s.opts.MaxAssertionsPerClient)
		s.jtis[client] = seen
	}
	s.mu.Unlock()
	if seen.Put(jti, struct{}{}, exp, now) {
		return nil
	}
	if _, replay := seen.Get(jti, now); replay {
		return errf("invalid_client", "The client_assertion was already used (jti).")
	}
	return errf("slow_down", "This client has too many unexpired assertions; wait for them to expire.")
}
