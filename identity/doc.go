// Package identity authenticates people: argon2id password hashes, a
// password policy, TOTP second factors (RFC 6238) and login with backoff and
// lockout.
//
// # Passwords
//
// [Hasher] stores passwords as PHC-style argon2id strings
// ($argon2id$v=19$m=65536,t=1,p=2$salt$hash) and tells the caller when a
// stored hash uses other parameters than its own, so that it can be
// rehashed at the next successful login. Every hash holds its memory from
// a [Pool] while it runs, so concurrent logins never use more than the
// pool's budget ([DefaultMemoryBudget]); callers wait their turn or get
// [ErrBusy]. Logins that no account vouches for (unknown usernames,
// recent failures) share half of the pool, so a flood of them cannot keep
// other people from signing in. A stored hash whose parameters ask for
// more memory than the whole budget, or more than [MaxTime] passes, is
// refused with [ErrHashCost] before anything is allocated.
//
// [CheckPassword] refuses passwords shorter than [MinPasswordLength] and
// passwords that follow a breached pattern. Without a network connection
// the package cannot ask a breach corpus, so "breached pattern" means here
// the shapes that dominate every published breach list: a password from an
// embedded list of several hundred of the most common passwords, or such a
// word with leetspeak substitutions and digits or symbols before or after
// it; a password made only of digits; keyboard walks and alphabet or digit
// runs (qwerty, asdf, 1qaz2wsx, 123456, abcdef) and repeated characters or
// repeated short blocks, alone or combined so that little else is left; and
// the username, or the username reversed, anywhere in the password.
//
// # Second factor
//
// [VerifyTOTP] checks an RFC 6238 code (HMAC-SHA1, 6 digits, 30 s steps,
// one step of skew either way) and returns the time step it matched. A code
// is accepted only for a step after the last accepted one, so a code cannot
// be used twice.
//
// # Login
//
// [Authenticator.Login] checks a username, password and TOTP code. Every
// failure, including an unknown username, a locked account and a wrong
// code, returns [ErrInvalidCredentials], and an unknown username costs the
// same argon2id work as a known one, so the answer does not tell whether an
// account exists. After [DefaultBackoffAfter] consecutive failures, further
// attempts are refused for a delay that doubles with each failure; after
// [DefaultLockAfter] failures the account is locked for [DefaultLockFor].
package identity
