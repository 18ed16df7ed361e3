package detect

import "net/http"

// ingestRoutes registers POST /security/ingest/{kind}.
func (h *handler) ingestRoutes(mux *http.ServeMux) {}
