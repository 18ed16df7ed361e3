package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-jose/go-jose/v4"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// ClientView is a registered OAuth client as the admin API shows it.
type ClientView struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Kind         string          `json:"kind"`
	RedirectURIs []string        `json:"redirect_uris"`
	JWKS         json.RawMessage `json:"jwks,omitempty"` // public keys only
	Scopes       []string        `json:"scopes"`
	Status       string          `json:"status"`
	Created      string          `json:"created"`
	Version      int64           `json:"version"`
}

// NewClientView returns the public view of c.
func NewClientView(c *phivault.Client) ClientView {
	v := ClientView{ID: c.ID, Name: c.Name, Kind: c.Kind, RedirectURIs: nonNil(c.RedirectURIs), Scopes: nonNil(c.Scopes),
		Status: c.Status, Created: c.Created.UTC().Format(time.RFC3339), Version: c.Version}
	if len(c.JWKS) > 0 && json.Valid(c.JWKS) {
		v.JWKS = c.JWKS
	}
	return v
}

// ClientCreate is the body of POST /admin/clients.
type ClientCreate struct {
	Name         string          `json:"name"`
	Kind         string          `json:"kind"` // public or backend
	RedirectURIs []string        `json:"redirect_uris"`
	JWKS         json.RawMessage `json:"jwks"` // backend: a JWK Set of public keys
	Scopes       []string        `json:"scopes"`
}

// ClientUpdate is the body of PATCH /admin/clients/{id}; absent fields are
// left as they are.
type ClientUpdate struct {
	Name         *string         `json:"name,omitempty"`
	RedirectURIs *[]string       `json:"redirect_uris,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	Scopes       *[]string       `json:"scopes,omitempty"`
	Status       *string         `json:"status,omitempty"` // active or suspended
	// Reason says why Status is set: a code (phivault.IsCode), e.g.
	// "investigation", which goes into the Decision of the change's audit
	// entries; it is not stored with the client. Optional, and only with
	// Status: anything else is refused (400).
	Reason *string `json:"reason,omitempty"`
}

// registerClients adds the client routes to h.
func registerClients(h *Handler) {
	h.mux.Handle("GET /admin/clients", h.manageClients(h.listClients))
	h.mux.Handle("POST /admin/clients", h.manageClients(h.createClient))
	h.mux.Handle("GET /admin/clients/{id}", h.manageClients(h.getClient))
	h.mux.Handle("PATCH /admin/clients/{id}", h.manageClients(h.updateClient))
}

func (h *Handler) manageClients(next func(http.ResponseWriter, *http.Request)) http.Handler {
	inner := h.manage(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.opts.Clients == nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server manages no OAuth clients."))
			return
		}
		inner.ServeHTTP(w, r)
	})
}

func (h *Handler) listClients(w http.ResponseWriter, r *http.Request) {
	cs, err := h.opts.Clients.Clients(r.Context())
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	out := []ClientView{}
	for _, c := range cs {
		out = append(out, NewClientView(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
}

func (h *Handler) getClient(w http.ResponseWriter, r *http.Request) {
	c, err := h.opts.Clients.ClientByID(r.Context(), r.PathValue("id"))
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewClientView(c))
}

// createClient registers a client, or, if it reaches patients' records
// (see gateClient), a pending change that registers it once another admin
// approves: until then the client does not exist, and its key gets no
// token.
func (h *Handler) createClient(w http.ResponseWriter, r *http.Request) {
	var req ClientCreate
	err := decodeJSON(w, r, &req)
	c := &phivault.Client{Name: req.Name, Kind: req.Kind, RedirectURIs: req.RedirectURIs, Scopes: req.Scopes,
		Status: phivault.AccountActive, Created: h.now().UTC()}
	if err == nil && present(req.JWKS) {
		c.JWKS, err = PublicJWKS(req.JWKS)
	}
	if err == nil {
		err = CheckClient(c)
	}
	if err == nil {
		c.ID, err = h.newID()
	}
	var reason string
	if err == nil {
		reason, err = h.gateClient(r, nil, c)
	}
	if errors.Is(err, errAwaitsApproval) {
		view := NewClientView(c)
		h.requestChange(w, r, &pendingChange{PendingChange: PendingChange{ClientID: c.ID, Kind: ChangeClientCreate, Reason: reason, Client: &view},
			apply: func(ctx context.Context) (any, error) {
				c.Created = h.now().UTC()
				if err := h.opts.Clients.CreateClient(ctx, c); err != nil {
					return nil, err
				}
				h.log.Info("admin: client created", "client", c)
				return NewClientView(c), nil
			}})
		return
	}
	if err == nil {
		err = h.opts.Clients.CreateClient(r.Context(), c)
	}
	if err != nil {
		h.finish(w, r, "Client", c.ID, err, 0, nil)
		return
	}
	h.log.Info("admin: client created", "client", c)
	h.finish(w, r, "Client", c.ID, nil, http.StatusCreated, NewClientView(c))
}

// updateClient applies a PATCH to a client, or, if gateClient says so,
// stores it as a pending change (202) or refuses it. The decision is made
// on the client as stored, inside the read-modify-write.
func (h *Handler) updateClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req ClientUpdate
	err := decodeJSON(w, r, &req)
	if err == nil {
		err = checkStatusReason(req.Status, req.Reason)
	}
	if err == nil && present(req.JWKS) {
		req.JWKS, err = PublicJWKS(req.JWKS) // public parts only, in the change that waits too
	}
	var c *phivault.Client
	var reason string
	if err == nil {
		c, err = h.modifyClient(r.Context(), id, &req, func(old, c *phivault.Client) error {
			var err error
			reason, err = h.gateClient(r, old, c)
			return err
		})
	}
	if errors.Is(err, errAwaitsApproval) {
		h.requestChange(w, r, &pendingChange{PendingChange: PendingChange{ClientID: id, Kind: ChangeClientUpdate, Reason: reason, ClientUpdate: &req},
			apply: func(ctx context.Context) (any, error) {
				c, err := h.modifyClient(ctx, id, &req, nil)
				if err != nil {
					return nil, err
				}
				h.log.Info("admin: client updated", "client", c)
				return NewClientView(c), nil
			}})
		return
	}
	if err != nil {
		h.finish(w, r, "Client", id, err, 0, nil)
		return
	}
	h.log.Info("admin: client updated", "client", c)
	h.finishDecided(w, r, "Client", id, statusDecision(req.Status, req.Reason), nil, http.StatusOK, NewClientView(c))
}

// modifyClient applies req (its JWKS already passed through PublicJWKS)
// to client id, retrying on a concurrent change, and revokes the client's
// sessions if its status, keys, scopes or redirect URIs changed. gate, if
// not nil, is called with the client as read and as changed before it is
// stored; an error from it is returned and nothing is stored.
func (h *Handler) modifyClient(ctx context.Context, id string, req *ClientUpdate, gate func(old, c *phivault.Client) error) (*phivault.Client, error) {
	for try := 0; ; try++ {
		old, err := h.opts.Clients.ClientByID(ctx, id)
		if err != nil {
			return nil, err
		}
		c := *old
		if req.Name != nil {
			c.Name = *req.Name
		}
		if req.RedirectURIs != nil {
			c.RedirectURIs = *req.RedirectURIs
		}
		if present(req.JWKS) {
			c.JWKS = req.JWKS
		}
		if req.Scopes != nil {
			c.Scopes = *req.Scopes
		}
		if req.Status != nil {
			c.Status = *req.Status
		}
		if err := CheckClient(&c); err != nil {
			return nil, err
		}
		if gate != nil {
			if err := gate(old, &c); err != nil {
				return nil, err
			}
		}
		c.Version = old.Version + 1
		err = h.opts.Clients.UpdateClient(ctx, &c)
		if phivault.ErrorCode(err) == phivault.ECONFLICT && try < updateRetries {
			continue
		} else if err != nil {
			return nil, err
		}
		if c.Status != old.Status || c.Status != phivault.AccountActive || string(c.JWKS) != string(old.JWKS) ||
			!slices.Equal(c.Scopes, old.Scopes) || !slices.Equal(c.RedirectURIs, old.RedirectURIs) {
			return &c, h.revoke(ctx, c.ID)
		}
		return &c, nil
	}
}

// present reports whether a JSON member was given and is not null.
func present(m json.RawMessage) bool { return len(m) > 0 && string(m) != "null" }

// CheckClient validates a client: its kind, status, name, redirect URIs
// (public clients) or JWKS (backend clients), and SMART scopes.
func CheckClient(c *phivault.Client) error {
	if c.Name == "" || len(c.Name) > 200 || strings.ContainsFunc(c.Name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return phivault.Errorf(phivault.EINVALID, "A client needs a name of 1 to 200 printable characters.")
	}
	switch c.Status {
	case phivault.AccountActive, phivault.AccountSuspended:
	default:
		return phivault.Errorf(phivault.EINVALID, "A client's status is active or suspended.")
	}
	switch c.Kind {
	case phivault.ClientPublic:
		if len(c.RedirectURIs) == 0 {
			return phivault.Errorf(phivault.EINVALID, "A public client needs at least one redirect URI.")
		}
		if len(c.JWKS) > 0 {
			return phivault.Errorf(phivault.EINVALID, "A public client has no JWKS; it uses PKCE.")
		}
		for _, u := range c.RedirectURIs {
			if err := CheckRedirectURI(u); err != nil {
				return err
			}
		}
	case phivault.ClientBackend:
		if len(c.JWKS) == 0 {
			return phivault.Errorf(phivault.EINVALID, "A backend client needs a JWKS with its public keys.")
		}
		if len(c.RedirectURIs) > 0 {
			return phivault.Errorf(phivault.EINVALID, "A backend client has no redirect URIs.")
		}
	default:
		return phivault.Errorf(phivault.EINVALID, "A client's kind is public or backend.")
	}
	if len(c.Scopes) == 0 {
		return phivault.Errorf(phivault.EINVALID, "A client needs at least one scope.")
	}
	for i, s := range c.Scopes {
		if err := CheckScope(c.Kind, s); err != nil {
			return err
		}
		if slices.Contains(c.Scopes[:i], s) {
			return phivault.Errorf(phivault.EINVALID, "The scope %q is listed twice.", clip(s))
		}
	}
	return nil
}

// CheckRedirectURI accepts an absolute https URI, an http URI on a
// loopback host, a private-use scheme of a native app (RFC 8252 §7), or
// a path on the server's own origin (the console's /console/callback),
// without a fragment.
func CheckRedirectURI(s string) error {
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") {
		u, err := url.Parse(s)
		if err != nil || u.Fragment != "" || u.RawQuery != "" || len(s) > 2000 || strings.Contains(s, "\\") {
			return phivault.Errorf(phivault.EINVALID, "A redirect path must be a plain path, without a query or fragment.")
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Fragment != "" || len(s) > 2000 {
		return phivault.Errorf(phivault.EINVALID, "A redirect URI must be absolute, without a fragment.")
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1" || u.Hostname() == "::1"):
	case strings.Contains(u.Scheme, "."): // reverse-DNS private-use scheme, e.g. org.example.app
	default:
		return phivault.Errorf(phivault.EINVALID, "A redirect URI must use https, http on a loopback address, or a reverse-DNS app scheme.")
	}
	return nil
}

// scopeWords are the SMART App Launch scopes that are not resource scopes.
var scopeWords = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access"}

// CheckScope accepts a SMART v1 or v2 scope a client of kind may hold:
// "context/Type.permissions" with an optional "?param=value" query, or one
// of the launch and identity scopes. Backend clients hold system/ scopes
// only; public clients patient/ and user/ scopes.
func CheckScope(kind, s string) error {
	bad := phivault.Errorf(phivault.EINVALID, "Unknown scope %q: want e.g. patient/*.rs, user/Observation.cruds, system/*.rs or openid.", clip(s))
	if slices.Contains(scopeWords, s) {
		if kind == phivault.ClientBackend {
			return phivault.Errorf(phivault.EINVALID, "A backend client holds only system/ scopes.")
		}
		return nil
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return bad
	}
	switch {
	case ctx == "system" && kind == phivault.ClientBackend, (ctx == "patient" || ctx == "user") && kind == phivault.ClientPublic:
	case ctx == "system" || ctx == "patient" || ctx == "user":
		return phivault.Errorf(phivault.EINVALID, "A %s client cannot hold %s/ scopes.", kind, ctx)
	default:
		return bad
	}
	rest, query, _ := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || !(typ == "*" || isResourceType(typ)) || !validPermissions(perm) {
		return bad
	}
	if query != "" {
		if q, err := url.ParseQuery(query); err != nil || len(q) == 0 {
			return bad
		}
	}
	return nil
}

func isResourceType(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// validPermissions accepts v1 read, write, * and v2 c?r?u?d?s? (in order,
// at least one).
func validPermissions(p string) bool {
	switch p {
	case "read", "write", "*":
		return true
	case "":
		return false
	}
	order := "cruds"
	for _, c := range p {
		i := strings.IndexRune(order, c)
		if i < 0 {
			return false
		}
		order = order[i+1:]
	}
	return true
}

// PublicJWKS parses a JSON Web Key Set of a backend client and returns it
// re-encoded with public parts only. It refuses a set with any private or
// symmetric key (which must never be sent to the server), a key without a
// kid, and a key of a type other than RSA (2048 bits or more) or EC.
func PublicJWKS(raw []byte) ([]byte, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, phivault.Errorf(phivault.EINVALID, "jwks must be a JSON Web Key Set: {\"keys\": [...]}.")
	}
	// go-jose parses "d" into a private key; check the raw members too, so
	// that a private member go-jose ignores is refused as well.
	var members struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(raw, &members) == nil {
		for _, k := range members.Keys {
			for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
				if _, ok := k[m]; ok {
					return nil, phivault.Errorf(phivault.EINVALID, "The jwks holds private or symmetric key material; send public keys only and keep the private key with the client.")
				}
			}
		}
	}
	if len(set.Keys) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "The jwks has no keys.")
	}
	out := jose.JSONWebKeySet{}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, phivault.Errorf(phivault.EINVALID, "The jwks holds private or symmetric key material; send public keys only and keep the private key with the client.")
		}
		if !k.Valid() || k.KeyID == "" {
			return nil, phivault.Errorf(phivault.EINVALID, "Every key in the jwks needs a kid and a valid public key.")
		}
		if err := checkKeyStrength(k); err != nil {
			return nil, err
		}
		out.Keys = append(out.Keys, k.Public())
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, phivault.Errorf(phivault.EINVALID, "The jwks could not be encoded.")
	}
	return b, nil
}

// checkKeyStrength accepts RSA keys of 2048 bits or more and EC keys, the
// key types of SMART Backend Services (RS384, ES384).
func checkKeyStrength(k jose.JSONWebKey) error {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return phivault.Errorf(phivault.EINVALID, "RSA keys in the jwks must have at least 2048 bits.")
		}
	case *ecdsa.PublicKey:
	default:
		return phivault.Errorf(phivault.EINVALID, "Keys in the jwks must be RSA or EC (for RS384 or ES384).")
	}
	return nil
}
