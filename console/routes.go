package console

import (
	"net/http"
	"strings"

	"github.com/phivault/phivault"
)

// maxForm bounds a form the console accepts.
const maxForm = 64 << 10

// A gate says who may open a page. The API behind the page decides again
// on what it answers; the gate keeps the console from showing a page (or
// a link to one) that its API would refuse.
type gate func(p *phivault.Principal) bool

func anyStaff(p *phivault.Principal) bool       { return p.Kind == phivault.PrincipalStaff }
func officer(p *phivault.Principal) bool        { return p.Auditor() }
func privacyOfficer(p *phivault.Principal) bool { return p.HasRole(phivault.RolePrivacyOfficer) }
func securityAdmin(p *phivault.Principal) bool  { return p.HasRole(phivault.RoleSecurityAdmin) }

// navPage is a page of the console's navigation, linked only for those
// its gate lets in.
type navPage struct {
	path, label string
	may         gate
}

// navLink is a link of the navigation.
type navLink struct {
	Path, Label string
	Current     bool
}

// navFor returns the links p may follow, marking the one of current.
func (h *Handler) navFor(p *phivault.Principal, current string) []navLink {
	var out []navLink
	for _, n := range h.nav {
		if n.may(p) {
			cur := current == n.path || n.path != "/console/" && strings.HasPrefix(current, n.path+"/")
			out = append(out, navLink{Path: n.path, Label: n.label, Current: cur})
		}
	}
	return out
}

// who names the signed-in person in the page header: their roles and
// account id (the console reads no profile).
func who(p *phivault.Principal) string {
	roles := strings.Join(p.Roles, ", ")
	if roles == "" {
		roles = "staff"
	}
	return roles + " · account " + shortID(p.ID)
}

// routes registers the console's pages. Each area registers its own
// (in its own file); page adds a page to the navigation, in this order,
// so that the navigation links only pages that exist.
func (h *Handler) routes() {
	h.mux.HandleFunc("GET /console/signin", h.signIn)
	h.mux.HandleFunc("GET "+CallbackPath, h.callback)
	h.mux.Handle("GET /console/static/", h.serveStatic())
	h.mux.HandleFunc("POST /console/signout", h.with(anyStaff, h.signOut))

	h.page("/console/{$}", "/console/", "Overview", officer, h.home)
	h.alertRoutes()
	h.incidentRoutes()
	h.accessRoutes()
	h.auditRoutes()
	h.peopleRoutes()
	h.keysRoutes()
	h.reportRoutes()

	h.mux.HandleFunc("/console/", h.with(anyStaff, func(w http.ResponseWriter, r *http.Request, s *session) {
		h.renderError(w, r, s, http.StatusNotFound, "There is no such page in the console.")
	}))
	h.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	})
}

// page registers GET pattern for the people may lets in, and links it as
// label at path in the navigation. (The overview's gate differs from
// its route's: other staff are sent on from there to the report form.)
func (h *Handler) page(pattern, path, label string, may gate, f pageFunc) {
	route := may
	if path == "/console/" {
		route = anyStaff
	}
	h.mux.HandleFunc("GET "+pattern, h.with(route, f))
	h.nav = append(h.nav, navPage{path: path, label: label, may: may})
}

// pageFunc is a page of a signed-in person.
type pageFunc func(w http.ResponseWriter, r *http.Request, s *session)

// with serves f to the signed-in people that may pass: without a live
// session, the browser is sent to sign in (and back after); one the gate
// stops gets the 403 page, and no API is called. A form must carry the
// session's CSRF token.
func (h *Handler) with(may gate, f pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := h.sessions.get(r, h.opts.Now())
		if s == nil {
			h.toSignIn(w, r)
			return
		}
		if !may(&s.principal) {
			h.renderError(w, r, s, http.StatusForbidden, "This page is not open to your role.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				h.renderError(w, r, s, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !s.checkCSRF(r) {
				h.renderError(w, r, s, http.StatusForbidden, "The form has expired or did not come from this console; reload the page and try again.")
				return
			}
		}
		f(w, r, s)
	}
}

// home is the overview for officers; other staff start at the report form.
func (h *Handler) home(w http.ResponseWriter, r *http.Request, s *session) {
	if !officer(&s.principal) {
		http.Redirect(w, r, "/console/report", http.StatusSeeOther)
		return
	}
	h.overview(w, r, s)
}
