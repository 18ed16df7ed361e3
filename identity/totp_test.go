package identity_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/phivault/phivault/identity"
)

// RFC 6238 Appendix B test vectors (8 digits).
func TestTOTPRFC6238Vectors(t *testing.T) {
	seeds := map[otp.Algorithm][]byte{
		otp.AlgorithmSHA1:   []byte("12345678901234567890"),
		otp.AlgorithmSHA256: []byte("12345678901234567890123456789012"),
		otp.AlgorithmSHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	vectors := []struct {
		unix int64
		alg  otp.Algorithm
		code string
	}{
		{59, otp.AlgorithmSHA1, "94287082"},
		{59, otp.AlgorithmSHA256, "46119246"},
		{59, otp.AlgorithmSHA512, "90693936"},
		{1111111109, otp.AlgorithmSHA1, "07081804"},
		{1111111109, otp.AlgorithmSHA256, "68084774"},
		{1111111109, otp.AlgorithmSHA512, "25091201"},
		{1111111111, otp.AlgorithmSHA1, "14050471"},
		{1111111111, otp.AlgorithmSHA256, "67062674"},
		{1111111111, otp.AlgorithmSHA512, "99943326"},
		{1234567890, otp.AlgorithmSHA1, "89005924"},
		{1234567890, otp.AlgorithmSHA256, "91819424"},
		{1234567890, otp.AlgorithmSHA512, "93441116"},
		{2000000000, otp.AlgorithmSHA1, "69279037"},
		{2000000000, otp.AlgorithmSHA256, "90698825"},
		{2000000000, otp.AlgorithmSHA512, "38618901"},
		{20000000000, otp.AlgorithmSHA1, "65353130"},
		{20000000000, otp.AlgorithmSHA256, "77737706"},
		{20000000000, otp.AlgorithmSHA512, "47863826"},
	}
	for _, v := range vectors {
		c := identity.TOTP{Digits: 8, Algorithm: v.alg, Skew: -1}
		now := time.Unix(v.unix, 0)
		got, err := c.Code(seeds[v.alg], c.Step(now))
		if err != nil || got != v.code {
			t.Errorf("%v at %d: Code = %q, %v; want %q", v.alg, v.unix, got, err, v.code)
		}
		if _, ok := c.Verify(seeds[v.alg], v.code, now, -1); !ok {
			t.Errorf("%v at %d: Verify(%q) refused", v.alg, v.unix, v.code)
		}
	}
}

func TestTOTPReplayAndSkew(t *testing.T) {
	secret := []byte("12345678901234567890")
	c := identity.TOTP{}
	now := time.Unix(1111111111, 0)
	cur := c.Step(now)
	code, err := c.Code(secret, cur)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != identity.DefaultTOTPDigits {
		t.Fatalf("code %q has %d digits; want %d", code, len(code), identity.DefaultTOTPDigits)
	}
	step, ok := identity.VerifyTOTP(secret, code, now, 0)
	if !ok || step != cur {
		t.Fatalf("VerifyTOTP(current) = %d, %v; want %d, true", step, ok, cur)
	}
	// The same code again, or any code at or before the accepted step, is refused.
	if _, ok := identity.VerifyTOTP(secret, code, now, step); ok {
		t.Error("a code was accepted twice")
	}
	prev, _ := c.Code(secret, cur-1)
	if _, ok := identity.VerifyTOTP(secret, prev, now, step); ok {
		t.Error("an earlier step was accepted after a later one")
	}
	// The next step is accepted once the current one was used.
	next, _ := c.Code(secret, cur+1)
	if s, ok := identity.VerifyTOTP(secret, next, now, step); !ok || s != cur+1 {
		t.Errorf("VerifyTOTP(next step) = %d, %v; want %d, true", s, ok, cur+1)
	}
	// Skew: one step either way is accepted, two are not.
	for _, tt := range []struct {
		delta int64
		ok    bool
	}{{-2, false}, {-1, true}, {0, true}, {1, true}, {2, false}} {
		code, _ := c.Code(secret, cur+tt.delta)
		if _, ok := identity.VerifyTOTP(secret, code, now, 0); ok != tt.ok {
			t.Errorf("step %+d: accepted = %v; want %v", tt.delta, ok, tt.ok)
		}
	}
	// Wrong and malformed codes.
	for _, bad := range []string{"", "12345", "1234567", "abcdef", wrongCode(code)} {
		if _, ok := identity.VerifyTOTP(secret, bad, now, 0); ok {
			t.Errorf("VerifyTOTP(%q) accepted", bad)
		}
	}
	if _, ok := identity.VerifyTOTP(nil, code, now, 0); ok {
		t.Error("VerifyTOTP without a secret accepted")
	}
}

func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestTOTPURI(t *testing.T) {
	secret, err := identity.NewTOTPSecret(nil)
	if err != nil || len(secret) != identity.DefaultTOTPKeySize {
		t.Fatalf("NewTOTPSecret = %d bytes, %v", len(secret), err)
	}
	u, err := identity.TOTPURI("phivault", "jdoe", secret)
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "otpauth" || pu.Host != "totp" || pu.Query().Get("secret") == "" || pu.Query().Get("issuer") != "phivault" {
		t.Errorf("TOTPURI = %q", u)
	}
}
