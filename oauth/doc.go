// Package oauth is phivault's OAuth 2.0 authorization server for SMART on
// FHIR, and its session and token manager.
//
// People log in through SMART App Launch (authorization code with PKCE S256,
// public clients) with a password and a TOTP code, or through another login
// method that ends in [Server.Complete]. Systems get tokens through SMART
// Backend Services (client_credentials with a private_key_jwt assertion
// checked against the client's registered JWKS). Scopes are SMART v1 and v2
// scopes, granted as the intersection of what is asked, what the client is
// registered for, and what the principal's kind may hold.
//
// [Sessions] holds the sessions: opaque random tokens stored as SHA-256
// hashes, 15-minute access tokens, refresh tokens rotated on every use with
// reuse detection, an idle timeout and an absolute lifetime, and
// revocation that takes effect on the next request. It implements
// api.Authenticator and phivault.SessionRevoker. Sessions live in memory
// only; see docs/identity.md.
//
// Anonymous callers cannot exhaust the sign-in: a pending authorization
// travels sealed (XChaCha20-Poly1305) in the login page rather than in a server
// table, the sign-in and token endpoints are limited per source address
// ([Limiter]), and each backend client has its own bounded jti replay
// cache.
package oauth
