package passkey

import (
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
)

// Ceremony kinds.
const (
	kindRegister = "register"
	kindLogin    = "login"
)

// ceremony is the server-side state of one begun ceremony.
type ceremony struct {
	kind      string
	session   webauthn.SessionData
	accountID string // register: the account; login: the named account, or "" for discoverable
	pending   string // login: the pending OAuth authorization
}

var errTooManyCeremonies = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "Too many passkey ceremonies are in progress; try again in a minute."}

// putCeremony stores c under a new random id until Options.CeremonyTTL
// after now and returns the id.
func (h *Handler) putCeremony(c *ceremony, now time.Time) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(h.o.Rand, b[:]); err != nil {
		return "", fmt.Errorf("ceremony id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	if !h.ceremonies.Put(id, c, now.Add(h.o.CeremonyTTL), now) {
		return "", errTooManyCeremonies
	}
	return id, nil
}

// takeCeremony removes and returns the ceremony id of kind, if it exists
// and has not expired. A ceremony can be taken once, whatever happens next.
func (h *Handler) takeCeremony(id, kind string, now time.Time) (*ceremony, bool) {
	c, ok := h.ceremonies.Take(id, now)
	if !ok || c.kind != kind {
		return nil, false
	}
	return c, true
}
