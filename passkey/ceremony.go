package passkey

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
)

// Purposes of sealed ceremonies: a ceremony opens only for its own kind.
const (
	purposeRegister = "phivault passkey registration v1"
	purposeLogin    = "phivault passkey login v1"
)

// ceremony is the state of one begun ceremony. It does not stay on the
// server: begin seals it (internal/sealbox, under Options.CeremonyKey)
// into the ceremony token the browser holds, and finish opens it again,
// so that anonymous login/begin requests store nothing.
type ceremony struct {
	Session   webauthn.SessionData `json:"s"`
	AccountID string               `json:"a,omitempty"` // register: the account; login: the named account, or "" for discoverable
	Pending   string               `json:"p,omitempty"` // login: the pending OAuth authorization

	expires time.Time // when the sealed token expires; set by openCeremony
}

// sealCeremony returns c sealed for purpose until Options.CeremonyTTL
// after now.
func (h *Handler) sealCeremony(purpose string, c *ceremony, now time.Time) (string, error) {
	return h.box.Seal(purpose, c, now.Add(h.o.CeremonyTTL))
}

// openCeremony returns the ceremony sealed in token for purpose, if it
// opens and has not expired. A sealed ceremony can be opened more than
// once; what makes a login's challenge single-use is usedChallenges.
func (h *Handler) openCeremony(purpose, token string, now time.Time) (*ceremony, bool) {
	var c ceremony
	expires, err := h.box.Open(purpose, token, now, &c)
	if err != nil || c.Session.Challenge == "" {
		return nil, false
	}
	c.expires = expires
	return &c, true
}

var errTooManyLogins = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "Too many passkey sign-ins for this account in the last minutes; try again later."}

// usedChallenges remembers each login challenge that a verified assertion
// answered, until its sealed ceremony expires, so that a recorded
// assertion cannot be replayed with the ceremony it answered: the
// challenge is used once. Only assertions whose signature verified
// against a registered credential add to it, so anonymous callers cannot;
// and each account has at most max live entries, so one account cannot
// fill it for the others. Expired entries are dropped at most once every
// sweepEvery. It is safe for concurrent use.
type usedChallenges struct {
	max        int
	sweepEvery time.Duration

	mu         sync.Mutex
	challenges map[string]usedChallenge // by challenge
	perAccount map[string]int           // live entries by account id
	nextSweep  time.Time
}

type usedChallenge struct {
	account string
	expires time.Time
}

func newUsedChallenges(max int, sweepEvery time.Duration) *usedChallenges {
	return &usedChallenges{max: max, sweepEvery: sweepEvery, challenges: make(map[string]usedChallenge), perAccount: make(map[string]int)}
}

// use records that account answered challenge, whose ceremony expires at
// expires. It returns errCeremony if the challenge was answered before,
// and errTooManyLogins if the account has max live entries; either way it
// records nothing.
func (u *usedChallenges) use(account, challenge string, expires, now time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !now.Before(u.nextSweep) {
		u.nextSweep = now.Add(u.sweepEvery)
		for ch, e := range u.challenges {
			if !now.Before(e.expires) {
				delete(u.challenges, ch)
				if u.perAccount[e.account]--; u.perAccount[e.account] <= 0 {
					delete(u.perAccount, e.account)
				}
			}
		}
	}
	if _, used := u.challenges[challenge]; used {
		return errCeremony
	}
	if u.perAccount[account] >= u.max {
		return errTooManyLogins
	}
	u.challenges[challenge] = usedChallenge{account: account, expires: expires}
	u.perAccount[account]++
	return nil
}

// len returns how many challenges are remembered.
func (u *usedChallenges) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.challenges)
}

// retryAfter sets Retry-After to the ceremony lifetime in whole seconds:
// by then the account's entries have expired.
func (h *Handler) retryAfter(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int((h.o.CeremonyTTL+time.Second-1)/time.Second)))
}
