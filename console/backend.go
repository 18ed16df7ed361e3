package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxReply bounds what the console reads of one API answer.
const maxReply = 32 << 20

// reply is an API's answer, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// recorder is the http.ResponseWriter of an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	over   bool
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}
func (rec *recorder) Write(b []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	if rec.body.Len()+len(b) > maxReply {
		rec.over = true
		return 0, errors.New("console: answer too large")
	}
	return rec.body.Write(b)
}

// apiError is an API's refusal: its status and the safe message of its
// OperationOutcome (or OAuth error), which the console may show.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("console: API answered %d: %s", e.status, e.message)
}

// errSignedOut says the person's session has ended: the page sends them
// to sign in again.
var errSignedOut = errors.New("console: the session has ended")

// call sends one request to the backend in process, with r's context (its
// request id and source address) and, if token is not "", a bearer
// token. form, if not nil, is sent as a urlencoded body; else body, if
// not nil, as JSON.
func (h *Handler) call(r *http.Request, token, method, path string, form url.Values, body any, header ...string) (*reply, error) {
	var rd io.Reader
	ctype := ""
	switch {
	case form != nil:
		rd, ctype = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	case body != nil:
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return nil, err
	}
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := &recorder{header: make(http.Header)}
	h.opts.Backend.ServeHTTP(rec, req)
	if rec.over {
		return nil, errors.New("console: an API answer was too large")
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &reply{status: rec.status, header: rec.header, body: rec.body.Bytes()}, nil
}

// refusal returns the apiError of a reply that is not a success, or nil.
func (rp *reply) refusal() error {
	if rp.status < 400 {
		return nil
	}
	var out struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
		Description string `json:"error_description"`
	}
	json.Unmarshal(rp.body, &out)
	msg := out.Description
	if len(out.Issue) > 0 {
		msg = out.Issue[0].Diagnostics
	}
	if msg == "" {
		msg = http.StatusText(rp.status)
	}
	return &apiError{status: rp.status, message: msg}
}

// tokens is the OAuth token endpoint's answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// tokenGrant posts form to /oauth/token.
func (h *Handler) tokenGrant(r *http.Request, form url.Values) (*tokens, error) {
	form.Set("client_id", ClientID)
	rp, err := h.call(r, "", http.MethodPost, "/oauth/token", form, nil)
	if err != nil {
		return nil, err
	}
	if err := rp.refusal(); err != nil {
		return nil, err
	}
	var t tokens
	if err := json.Unmarshal(rp.body, &t); err != nil || t.AccessToken == "" {
		return nil, errors.New("console: the token endpoint's answer did not parse")
	}
	return &t, nil
}

// refreshMargin: an access token this close to its expiry is refreshed
// before use.
const refreshMargin = 30 * time.Second

// accessToken returns s's access token, refreshed first if it is about
// to expire. A refused refresh ends the session (errSignedOut).
func (h *Handler) accessToken(r *http.Request, s *session) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return "", errSignedOut
	}
	if h.opts.Now().Add(refreshMargin).Before(s.accessExpires) {
		return s.access, nil
	}
	if s.refresh == "" {
		s.ended = true
		return "", errSignedOut
	}
	t, err := h.tokenGrant(r, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.refresh}})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status < 500 {
			s.ended = true
			return "", errSignedOut
		}
		return "", err
	}
	s.access, s.refresh = t.AccessToken, t.RefreshToken
	s.accessExpires = h.opts.Now().Add(time.Duration(t.ExpiresIn) * time.Second)
	return s.access, nil
}

// api sends one request as s's person. A 401 means the OAuth session
// behind s ended (expired, revoked, the account suspended): s ends too.
func (h *Handler) api(r *http.Request, s *session, method, path string, body any, header ...string) (*reply, error) {
	tok, err := h.accessToken(r, s)
	if err != nil {
		return nil, err
	}
	rp, err := h.call(r, tok, method, path, nil, body, header...)
	if err != nil {
		return nil, err
	}
	if rp.status == http.StatusUnauthorized {
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		h.sessions.drop(s)
		return nil, errSignedOut
	}
	return rp, nil
}

// getJSON reads path as s's person into v.
func (h *Handler) getJSON(r *http.Request, s *session, path string, v any) error {
	rp, err := h.api(r, s, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := rp.refusal(); err != nil {
		return err
	}
	if err := json.Unmarshal(rp.body, v); err != nil {
		return fmt.Errorf("console: %s: %w", strings.SplitN(path, "?", 2)[0], err)
	}
	return nil
}
