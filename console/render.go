package console

import (
	"bytes"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed templates
var templateFS embed.FS

//go:embed static/*.css static/*.js static/vendor
var staticFS embed.FS

// pages are the parsed templates: each page's own file with the layout.
type pages struct {
	byName    map[string]*template.Template
	integrity map[string]string // static file name → its SRI hash
}

func parsePages() (*pages, error) {
	p := &pages{byName: make(map[string]*template.Template), integrity: make(map[string]string)}
	err := fs.WalkDir(staticFS, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha512.Sum384(b)
		p.integrity[strings.TrimPrefix(name, "static/")] = "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	funcs := template.FuncMap{
		"static": func(name string) (string, error) {
			if _, ok := p.integrity[name]; !ok {
				return "", fmt.Errorf("no static file %s", name)
			}
			return "/console/static/" + name, nil
		},
		"sri": func(name string) string { return p.integrity[name] },
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"date": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format(time.DateOnly)
		},
		"join":         strings.Join,
		"list":         func(s ...string) []string { return s },
		"statusForm":   newStatusForm,
		"changesTable": newChangesTable,
		"short":        func(id string) string { return shortID(id) },
		"ms": func(ms int64) string {
			return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
		},
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, name)
		if err != nil {
			return nil, fmt.Errorf("console: %s: %w", base, err)
		}
		p.byName[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// shortID returns the first 8 characters of an id, for tables; the full
// id stays in the link and its title.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// view is what every page's template gets.
type view struct {
	Title string
	Nav   []navLink // the pages the person may open; nil when signed out
	Who   string    // the person, as the console knows them
	CSRF  string
	Data  any
}

// render writes page name with data; s is the session, or nil for the
// signed-out pages.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	t := h.pages.byName[name]
	if t == nil {
		h.opts.Logger.Error("console: no template", "page", name)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Data: data}
	if s != nil {
		v.Nav, v.Who, v.CSRF = h.navFor(&s.principal, r.URL.Path), who(&s.principal), s.csrf
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		h.opts.Logger.Error("console: render", "page", name, "error", err.Error())
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if t0, ok := r.Context().Value(startKey{}).(time.Time); ok { // the server's time, for the browser's tools and phivault bench
		w.Header().Set("Server-Timing", fmt.Sprintf("app;dur=%.1f", float64(time.Since(t0).Microseconds())/1000))
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage is the data of the error page.
type errorPage struct {
	Status  int
	Heading string
	Message string
}

// renderError shows an error page with a safe message.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	heading := "Something went wrong"
	switch status {
	case http.StatusForbidden:
		heading = "Not allowed"
	case http.StatusNotFound:
		heading = "Not found"
	case http.StatusBadRequest, http.StatusConflict, http.StatusPreconditionFailed, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		heading = "That did not work"
	}
	h.render(w, r, s, status, "error", heading, errorPage{Status: status, Heading: heading, Message: msg})
}

// internalError logs what failed (its type only: errors can carry ids)
// and shows a page that says to try again.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	h.opts.Logger.Error("console: "+what, "error_type", errorType(err), "path", r.URL.Path)
	h.renderError(w, r, s, http.StatusServiceUnavailable, "The console could not complete this; try again in a moment.")
}

// fail answers a page whose API call failed: to sign in again if the
// session ended, else the API's own status and safe message.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	switch {
	case errors.Is(err, errSignedOut):
		h.toSignIn(w, r)
	case errors.As(err, &ae) && ae.status < 500:
		h.renderError(w, r, s, ae.status, ae.message)
	default:
		h.internalError(w, r, s, "API call", err)
	}
}

// toSignIn sends the browser to sign in, and back to this page after.
func (h *Handler) toSignIn(w http.ResponseWriter, r *http.Request) {
	clearSessionCookie(w)
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		next = r.URL.Path
	}
	if r.Header.Get("HX-Request") == "true" { // htmx follows this header with a full page load
		w.Header().Set("HX-Redirect", "/console/signin?next="+url.QueryEscape(next))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
}

func errorType(err error) string { return fmt.Sprintf("%T", err) }

func secondsOf(n int64) time.Duration { return time.Duration(n) * time.Second }

// serveStatic serves the embedded static files.
func (h *Handler) serveStatic() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/console/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "private, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
