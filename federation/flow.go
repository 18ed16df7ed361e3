package federation

import (
	"encoding/base64"
	"fmt"
	"io"
)

// flow is the server-side state of one started login at a provider, kept
// in Handler.flows until it expires (Options.StateTTL).
type flow struct {
	provider string
	pending  string
	state    string
	nonce    string
	verifier string // PKCE code verifier
}

// random returns n random bytes from rand as base64url.
func random(rand io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
