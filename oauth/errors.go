package oauth

import (
	"encoding/json"
	"html/template"
	"net/http"

	"github.com/phivault/phivault"
)

// oauthError is an RFC 6749 section 5.2 error. Description is safe to show:
// it never holds a token, a credential or a submitted value.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errf(code, desc string) *oauthError { return &oauthError{Code: code, Description: desc} }

// status returns the HTTP status for an error code.
func (e *oauthError) status() int {
	switch e.Code {
	case "invalid_client":
		return http.StatusUnauthorized
	case "temporarily_unavailable":
		return http.StatusServiceUnavailable
	case "slow_down":
		return http.StatusTooManyRequests
	case "server_error":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// auditOutcome maps an error code to the phivault error code recorded as
// the audit outcome.
func (e *oauthError) auditOutcome() string {
	switch e.Code {
	case "invalid_client", "invalid_grant":
		return phivault.EUNAUTHORIZED
	case "unauthorized_client", "access_denied":
		return phivault.EFORBIDDEN
	case "temporarily_unavailable", "slow_down":
		return phivault.EUNAVAILABLE
	case "server_error":
		return phivault.EINTERNAL
	}
	return phivault.EINVALID
}

var errUnavailable = errf("temporarily_unavailable", "The audit log cannot be written; nothing was issued. Try again later.")

// writeJSON writes v with status, uncacheable.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes e as an RFC 6749 JSON error.
func writeError(w http.ResponseWriter, e *oauthError) {
	if e.Code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phivault"`)
	}
	writeJSON(w, e.status(), e)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>phivault sign-in</title></head>
<body><h1>Sign-in problem</h1><p>{{.}}</p></body></html>
`))

// writePage shows msg as a plain page: the answer to errors that must not
// be redirected, because the redirect URI is not (yet) trusted.
func writePage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	pageTmpl.Execute(w, msg)
}
