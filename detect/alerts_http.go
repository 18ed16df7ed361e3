package detect

import "net/http"

// alertRoutes registers the alerts API.
func (h *handler) alertRoutes(mux *http.ServeMux) {}
