package federation

import (
	"encoding/base64"
	"fmt"
	"io"
)

// flowPurpose binds sealed flows to their purpose, so that nothing else
// sealed under the same key could pass for one.
const flowPurpose = "phivault federation flow v1"

// maxFlowCookie bounds the sealed flow, the value of the cookie. Browsers
// keep a cookie of 4096 bytes, counting its name and attributes; this
// leaves room for both.
const maxFlowCookie = 3900

// flow is the state of one login started at a provider. It does not stay
// on the server: start seals it (internal/sealbox, under Options.FlowKey,
// expiring after Options.StateTTL) into the cookie that binds it to the
// browser, and the callback opens it again, so that anonymous start
// requests store nothing.
type flow struct {
	Provider string `json:"o"`
	Pending  string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE code verifier
}

// random returns n random bytes from rand as base64url.
func random(rand io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
