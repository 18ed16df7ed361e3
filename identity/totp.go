package identity

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP defaults (RFC 6238 with the parameters authenticator apps expect).
const (
	DefaultTOTPPeriod  = 30 * time.Second
	DefaultTOTPSkew    = 1  // steps accepted either side of the current one
	DefaultTOTPDigits  = 6  // digits in a code
	DefaultTOTPKeySize = 20 // bytes of secret, the size of an HMAC-SHA1 output
)

// TOTP checks time-based one-time passwords. The zero value uses the
// defaults: HMAC-SHA1, DefaultTOTPDigits digits, DefaultTOTPPeriod steps
// and DefaultTOTPSkew steps of skew.
type TOTP struct {
	Period    time.Duration // default DefaultTOTPPeriod
	Skew      int           // default DefaultTOTPSkew; negative means none
	Digits    int           // 6 or 8; default DefaultTOTPDigits
	Algorithm otp.Algorithm // default otp.AlgorithmSHA1
}

func (c TOTP) period() time.Duration {
	if c.Period <= 0 {
		return DefaultTOTPPeriod
	}
	return c.Period
}

func (c TOTP) opts() hotp.ValidateOpts {
	d := otp.DigitsSix
	if c.Digits == 8 {
		d = otp.DigitsEight
	}
	return hotp.ValidateOpts{Digits: d, Algorithm: c.Algorithm}
}

// Step returns the time step that contains t.
func (c TOTP) Step(t time.Time) int64 {
	return t.Unix() / int64(c.period()/time.Second)
}

// NewTOTPSecret returns a fresh random secret of DefaultTOTPKeySize bytes
// read from r, or from crypto/rand if r is nil.
func NewTOTPSecret(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	secret := make([]byte, DefaultTOTPKeySize)
	if _, err := io.ReadFull(r, secret); err != nil {
		return nil, fmt.Errorf("identity: totp secret: %w", err)
	}
	return secret, nil
}

// Code returns the code for time step step.
func (c TOTP) Code(secret []byte, step int64) (string, error) {
	return hotp.GenerateCodeCustom(encodeSecret(secret), uint64(step), c.opts())
}

// Verify checks code against the steps around now (within the skew) that
// come after lastStep, and returns the step it matched. A code for lastStep
// or any earlier step is refused, so each code is accepted at most once;
// the caller must store the returned step as the new lastStep.
func (c TOTP) Verify(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	if len(secret) == 0 {
		return 0, false
	}
	skew := int64(c.Skew)
	if c.Skew == 0 {
		skew = DefaultTOTPSkew
	} else if c.Skew < 0 {
		skew = 0
	}
	cur := c.Step(now)
	enc := encodeSecret(secret)
	// Compare against every candidate step so the work does not depend on
	// which one matches.
	for s := cur - skew; s <= cur+skew; s++ {
		if s < 0 {
			continue
		}
		good, err := hotp.ValidateCustom(code, uint64(s), enc, c.opts())
		if err == nil && good && s > lastStep && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// VerifyTOTP is TOTP{}.Verify: the defaults of RFC 6238 as authenticator
// apps use them.
func VerifyTOTP(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	return TOTP{}.Verify(secret, code, now, lastStep)
}

// TOTPURI returns the otpauth:// URI that enrolls secret in an
// authenticator app, usually shown as a QR code. The account name appears
// in the app; prefer the username to anything that identifies a patient.
func TOTPURI(issuer, accountName string, secret []byte) (string, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: accountName, Secret: secret})
	if err != nil {
		return "", fmt.Errorf("identity: totp uri: %w", err)
	}
	return key.URL(), nil
}

func encodeSecret(secret []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
}
