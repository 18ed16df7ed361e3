package passkey

import (
	_ "embed"
	"html/template"
	"net/http"
)

//go:embed login.html
var loginHTML string

//go:embed login.js
var loginJS []byte

var loginTemplate = template.Must(template.New("login").Parse(loginHTML))

// pageData fills login.html.
type pageData struct {
	Pending string // the pending authorization; "" when it cannot continue
	Message string // an error to show, or ""
}

// loginPage serves the passkey sign-in page for a pending authorization.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	pending := r.URL.Query().Get("pending")
	if pending == "" || !h.o.ValidPending(pending) {
		h.page(w, r, http.StatusBadRequest, "", errPending.Message)
		return
	}
	h.page(w, r, http.StatusOK, pending, "")
}

// page renders the sign-in page with an optional message. With a pending
// id that is still valid the person can try again.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, status int, pending, message string) {
	if pending != "" && !h.o.ValidPending(pending) {
		pending = ""
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := loginTemplate.Execute(w, pageData{Pending: pending, Message: message}); err != nil {
		h.o.Logger.Error("passkey page", "error", err.Error())
	}
}

// loginScript serves the script of the sign-in page; it is a separate
// file so that the page needs no inline script under its CSP.
func (h *Handler) loginScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Write(loginJS)
}
