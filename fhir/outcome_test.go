package fhir

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/phivault/phivault"
)

func TestWriteOutcome(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"safe message", phivault.Errorf(phivault.EINVALID, "Give index and size as numbers."), http.StatusBadRequest,
			`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Give index and size as numbers."}]}`},
		{"unauthorized", phivault.Errorf(phivault.EUNAUTHORIZED, "Send <token>."), http.StatusUnauthorized,
			`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"Send \u003ctoken\u003e."}]}`},
		{"other error hides its text", errors.New("sqlite: row 42 of Patient"), http.StatusInternalServerError,
			`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Internal error."}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
			WriteOutcome(w, tt.err)
			if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody {
				t.Errorf("WriteOutcome = %d %s, want %d %s", w.Code, w.Body, tt.wantStatus, tt.wantBody)
			}
			h := w.Result().Header
			if got := h.Get("Content-Type"); got != "application/fhir+json; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := h.Get("Content-Length"); got != strconv.Itoa(len(tt.wantBody)) {
				t.Errorf("Content-Length = %q, want %d", got, len(tt.wantBody))
			}
			if got := h.Get("WWW-Authenticate"); got != `Bearer realm="x"` {
				t.Errorf("WWW-Authenticate = %q, want the header set before kept", got)
			}
		})
	}
}
