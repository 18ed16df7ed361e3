// Package passkey registers WebAuthn credentials (passkeys and security
// keys) for accounts and logs people in with them, using
// github.com/go-webauthn/webauthn for every protocol check.
//
// # Registration
//
// A person who is already logged in (a bearer token whose principal is an
// account, authenticated in full within [DefaultFreshAuth]) registers a
// credential in two JSON calls:
//
//	POST /oauth/passkey/register/begin            → {"ceremony": ID, "publicKey": PublicKeyCredentialCreationOptions}
//	POST /oauth/passkey/register/finish?ceremony=ID   body: the PublicKeyCredential as JSON
//
// Registration requires user verification (PIN or biometric on the
// authenticator), asks for no attestation, and excludes credentials the
// account already has. Credentials are stored in [phivault.Account.WebAuthn]
// in a versioned JSON encoding (see [EncodeCredentials]); the store seals
// that field at rest.
//
// # Login
//
// GET /oauth/passkey/login?pending=ID serves a page that runs the ceremony
// for a pending OAuth authorization: its script calls
//
//	POST /oauth/passkey/login/begin    {"pending": ID, "username": optional}
//
// then navigator.credentials.get, and submits the assertion as a form to
// POST /oauth/passkey/login/finish (fields ceremony and credential). Without
// a username the ceremony uses discoverable credentials (the authenticator
// tells which account); with one, the account's credentials are listed. An
// unknown username, or one without passkeys, gets a discoverable ceremony,
// so the answer does not tell whether the account exists.
//
// A login succeeds only if the authenticator verified the user (the UV
// flag), so the passkey alone is two factors: possession of the key and the
// PIN or biometric that unlocks it. The signature counter must grow (unless
// the authenticator always reports zero, as synced passkeys do); a counter
// that goes backwards marks the credential as possibly cloned and it is
// refused from then on. Only active accounts log in. On success the
// handler calls [Options.Complete] with methods "hwk" (or "swk" for a
// synced, backup-eligible passkey), "user" and "mfa" (RFC 8176).
//
// # Ceremony state
//
// Ceremony state (go-webauthn's session data with the challenge, and what
// it is bound to: the account, the pending authorization) is not kept on
// the server. Begin seals it (XChaCha20-Poly1305, internal/sealbox, under
// [Options.CeremonyKey]) into the ceremony token, which finish takes back;
// it expires after [DefaultCeremonyTTL], and a registration token does not
// open as a login token or the other way round. Anonymous login/begin
// requests therefore store nothing, and no flood of them can crowd out a
// sign-in.
//
// A login's challenge is single-use: once an assertion over it has
// verified, the challenge is remembered until its ceremony expires, and
// the same ceremony and assertion sent again are refused as a replay
// (400), before anything is stored. Only verified assertions add to this
// record, and each account to at most [Options.MaxLoginsPerAccount]
// entries; an account over it is refused with 429 and Retry-After. A
// registration replayed finds its credential registered already (409).
package passkey
