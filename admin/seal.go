package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
)

// Unsealer seals and unseals a running server's keyring.
type Unsealer interface {
	// Unseal opens the keyring with secret: the key-file passphrase, or
	// nothing for a KMS or HSM keyring, which is opened again with the
	// secrets the server holds. It returns an error with code
	// EUNAUTHORIZED or EFORBIDDEN if the secret was not accepted.
	// Unsealing an unsealed server does nothing.
	Unseal(ctx context.Context, secret []byte) error
	// Seal drops the keyring and every cached unwrapped key at once.
	Seal(ctx context.Context) error
}

// Unseal backoff: after n refused secrets in a row, the next attempt is
// accepted only UnsealBackoff·2^(n-1) later, at most MaxUnsealBackoff.
const (
	UnsealBackoff    = time.Second
	MaxUnsealBackoff = 5 * time.Minute

	maxUnsealBody = 4 << 10
)

// sealHandler serves $seal and $unseal. Unseal attempts run one at a time,
// so a guesser cannot run many key derivations in parallel either.
type sealHandler struct {
	h   *Handler
	now func() time.Time

	mu       sync.Mutex
	failures int
	next     time.Time // no attempt before then
}

// registerSeal adds the seal routes to h.
func registerSeal(h *Handler) {
	s := &sealHandler{h: h, now: h.opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	h.mux.Handle("POST /admin/$unseal", h.secure(s.unseal))
	h.mux.Handle("POST /admin/$seal", h.secure(s.seal))
}

// unsealRequest is the body of $unseal; an empty body means no secret.
type unsealRequest struct {
	Passphrase string `json:"passphrase"`
}

func (s *sealHandler) unseal(w http.ResponseWriter, r *http.Request) {
	if s.h.opts.Unsealer == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server cannot be sealed or unsealed."))
		return
	}
	var req unsealRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUnsealBody))
	if err != nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ETOOLARGE, "The unseal request is too large."))
		return
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			clear(body)
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, `The unseal request must be JSON: {"passphrase": "..."}, or empty.`))
			return
		}
	}
	clear(body)
	secret := []byte(req.Passphrase)
	defer clear(secret)

	s.mu.Lock()
	defer s.mu.Unlock()
	if wait := s.next.Sub(s.now()); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, fhir.NewOutcome("error", "throttled",
			"Too many refused unseal attempts; try again in "+strconv.Itoa(secs)+" s."))
		return
	}
	err = s.h.opts.Unsealer.Unseal(r.Context(), secret)
	if code := phivault.ErrorCode(err); code == phivault.EUNAUTHORIZED || code == phivault.EFORBIDDEN {
		s.failures++
		delay := min(UnsealBackoff<<min(s.failures-1, 20), MaxUnsealBackoff)
		s.next = s.now().Add(delay)
		// The secret is never logged, nor why it was refused.
		s.h.log.Warn("admin: unseal refused", "actor", api.ActorFromContext(r.Context()), "failures", s.failures, "retry_after", delay)
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EFORBIDDEN, "The vault was not unsealed: the secret was not accepted."))
		return
	} else if err != nil {
		if code != phivault.EINVALID {
			s.h.log.Error("admin: unseal", "actor", api.ActorFromContext(r.Context()), "code", code, "error", err.Error())
		}
		fhir.WriteOutcome(w, err)
		return
	}
	s.failures, s.next = 0, time.Time{}
	s.h.log.Info("admin: vault unsealed", "actor", api.ActorFromContext(r.Context()))
	writeJSON(w, http.StatusOK, fhir.NewOutcome("information", "informational", "The vault is unsealed."))
}

func (s *sealHandler) seal(w http.ResponseWriter, r *http.Request) {
	if s.h.opts.Unsealer == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server cannot be sealed or unsealed."))
		return
	}
	if err := s.h.opts.Unsealer.Seal(r.Context()); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	s.h.log.Warn("admin: vault sealed", "actor", api.ActorFromContext(r.Context()))
	writeJSON(w, http.StatusOK, fhir.NewOutcome("information", "informational",
		"The vault is sealed: cached keys were dropped and no records are served until it is unsealed."))
}
