package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/phivault/phivault"
)

// TestHandler_requestInfo checks that every request reaches the record
// service with its id, actor and source address for the audit trail, and
// that a client id set by an outer layer is kept.
func TestHandler_requestInfo(t *testing.T) {
	th := newTestHandler(t)
	var got phivault.RequestInfo
	th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
		got, _ = phivault.RequestInfoFromContext(ctx)
		return patient("p1", 1), nil
	}
	r := httptest.NewRequest("GET", "/fhir/Patient/p1", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.RemoteAddr = "192.0.2.7:40000"
	r = r.WithContext(phivault.WithRequestInfo(r.Context(), phivault.RequestInfo{Client: "lab-system"}))
	w := httptest.NewRecorder()
	th.ServeHTTP(w, r)
	wantStatus(t, w, http.StatusOK)
	want := phivault.RequestInfo{ID: w.Header().Get("X-Request-Id"), Actor: "admin", Client: "lab-system", Source: "192.0.2.7"}
	if got.ID != want.ID || got.Actor != want.Actor || got.Client != want.Client || got.Source != want.Source {
		t.Errorf("RequestInfo = %+v, want %+v", got, want)
	}
}
