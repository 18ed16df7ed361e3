// Package federation lets people log in through an external OpenID
// provider (OpenID Connect relying party), using github.com/coreos/go-oidc
// to discover the provider and verify ID tokens and golang.org/x/oauth2
// for the authorization code flow with PKCE.
//
// # Flow
//
// The login page of a pending OAuth authorization links to
//
//	GET /oauth/federated/{provider}/start?pending=ID
//
// which redirects the browser to the provider with a fresh state, nonce
// and PKCE (S256) challenge. These, the provider's name and the pending
// authorization are not kept on the server: they travel sealed
// (XChaCha20-Poly1305, internal/sealbox, under [Options.FlowKey], expiring
// after [DefaultStateTTL]) in a short-lived cookie
// (__Host-phivault-federation: HttpOnly, Secure, SameSite=Lax, Path=/)
// that binds the flow to the browser that started it. Anonymous start
// requests therefore store nothing, and no flood of them can crowd out a
// sign-in. The provider sends the browser back to
//
//	GET /oauth/federated/{provider}/callback?code=...&state=...
//
// where the cookie is opened and cleared, the state compared, the code
// exchanged with the PKCE verifier, and the ID token verified by go-oidc:
// signature against the provider's published keys, issuer, audience (the
// client id) and expiry (with the injected clock). The nonce must be the
// flow's. A copied cookie replayed with its callback gets no further: the
// provider redeems a code once, and the pending authorization completes
// once.
//
// # MFA
//
// Every login must be multi-factor. The ID token must carry an amr claim
// with one of the provider's MFA methods (default [DefaultMFAMethods]) or
// an acr claim equal to one of its configured MFA acr values; otherwise
// the login is refused with a page that says so. The completed login's
// methods are "fed" followed by the provider's amr values (and "mfa" when
// only acr proved it).
//
// # Accounts
//
// An account is found by its FederatedSubject, "issuer sub". If none is
// linked and the provider has a LinkClaim ("email" or
// "preferred_username"), the first login links the account whose Username
// equals that claim, but only if email_verified is true, the account is
// active and not linked to another subject; missing claims are read from
// the UserInfo endpoint (whose sub must match). Otherwise the login is
// refused: accounts are never created from a federated login.
package federation
