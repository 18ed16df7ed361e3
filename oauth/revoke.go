package oauth

import (
	"net/http"

	"github.com/phivault/phivault"
)

// serveRevoke answers POST /oauth/revoke (RFC 7009). A public client names
// itself with client_id, a backend client authenticates with a client
// assertion. Revoking an access token ends that token; revoking a refresh
// token ends its whole session. Unknown tokens get 200, as the RFC says.
// A token issued to another client is refused with unauthorized_client.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if e := parseForm(w, r); e != nil {
		writeError(w, e)
		return
	}
	tok := r.PostFormValue("token")
	if tok == "" {
		writeError(w, errf("invalid_request", "token is required."))
		return
	}
	clientID := r.PostFormValue("client_id")
	if r.PostFormValue("client_assertion") != "" {
		c, e := s.authenticateClient(r)
		if e != nil {
			writeError(w, s.refuseRevoke(r, "", e))
			return
		}
		clientID = c.ID
	} else if clientID == "" {
		writeError(w, errf("invalid_client", "client_id (or a client assertion) is required."))
		return
	} else if _, err := s.activeClient(r.Context(), clientID, phivault.ClientPublic); err != nil {
		// Backend clients are confidential: they must authenticate.
		writeError(w, s.refuseRevoke(r, clientID, errf("invalid_client", "Unknown client, or a backend client without a client assertion.")))
		return
	}
	p := s.sessions.Lookup(tok)
	if p == nil {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	if p.Client != clientID {
		writeError(w, s.refuseRevoke(r, clientID, errf("unauthorized_client", "The token was issued to another client.")))
		return
	}
	s.sessions.Revoke(tok)
	if err := s.audit(r, phivault.ActionTokenRevoke, p.ID, clientID, "ok", "revocation request"); err != nil {
		// The token is revoked all the same: revocation fails safe.
		writeError(w, errUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// refuseRevoke audits a refused revocation and returns e.
func (s *Server) refuseRevoke(r *http.Request, client string, e *oauthError) *oauthError {
	if err := s.audit(r, phivault.ActionTokenRevoke, "", client, e.auditOutcome(), "deny: "+e.Code); err != nil {
		return errUnavailable
	}
	return e
}
