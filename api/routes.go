package api

import "net/http"

// routes registers every route of the FHIR API. Each route names its FHIR
// interaction, which labels its metrics and log line.
//
// Go's ServeMux answers a wrong method with a plain-text 405, so the main mux
// sends anything it does not match to h.allow, a second mux holding the same
// paths without methods, which answers 405 with an OperationOutcome and an
// Allow header, or 404 for paths that are no route at all.
func (h *Handler) routes() {
	h.mux = http.NewServeMux()
	h.allow = http.NewServeMux()

	h.handle("GET /fhir/metadata", "capabilities", public, h.serveMetadata)
	h.handle("POST /fhir", "bundle", authenticated, h.serveBundle)
	h.handle("POST /fhir/{$}", "bundle", authenticated, h.serveBundle) // clients such as fhir-kit-client add the slash
	h.handle("GET /fhir/{type}", "search-type", authenticated, h.serveSearch)
	h.handle("POST /fhir/{type}", "create", authenticated, h.serveCreate)
	h.handle("POST /fhir/{type}/_search", "search-type", authenticated, h.serveSearch)
	h.handle("GET /fhir/{type}/_history", "history-type", authenticated, h.serveHistory)
	h.handle("GET /fhir/{type}/{id}", "read", authenticated, h.serveRead)
	h.handle("PUT /fhir/{type}/{id}", "update", authenticated, h.serveUpdate)
	h.handle("DELETE /fhir/{type}/{id}", "delete", authenticated, h.serveDelete)
	h.handle("GET /fhir/{type}/{id}/_history", "history-instance", authenticated, h.serveHistory)
	h.handle("GET /fhir/{type}/{id}/_history/{vid}", "vread", authenticated, h.serveVRead)
	h.handle("GET /fhir/Patient/{id}/$everything", "everything", authenticated, h.serveEverything)

	h.methods("/fhir/metadata", "GET, HEAD")
	h.methods("/fhir", "POST")
	h.methods("/fhir/{$}", "POST")
	h.methods("/fhir/{type}", "GET, HEAD, POST")
	h.methods("/fhir/{type}/_search", "POST")
	h.methods("/fhir/{type}/_history", "GET, HEAD")
	h.methods("/fhir/{type}/{id}", "GET, HEAD, PUT, DELETE")
	h.methods("/fhir/{type}/{id}/_history", "GET, HEAD")
	h.methods("/fhir/{type}/{id}/_history/{vid}", "GET, HEAD")
	h.methods("/fhir/Patient/{id}/$everything", "GET, HEAD")
	h.allow.Handle("/", h.route("", "unknown", public, h.serveNotFound))

	h.mux.Handle("/", h.allow)
}

const (
	public        = false
	authenticated = true
)

func (h *Handler) handle(pattern, interaction string, auth bool, fn routeFunc) {
	h.mux.Handle(pattern, h.route(pattern, interaction, auth, fn))
}

func (h *Handler) methods(pattern, allow string) {
	h.allow.Handle(pattern, h.route(pattern, "unknown", public, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		return errMethodNotAllowed
	}))
}
