package admin

import (
	"net/http"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

func TestStatusOutcome(t *testing.T) {
	for _, c := range statusCodes {
		if got := statusOutcome(fhir.Status(c)); got != c {
			t.Errorf("statusOutcome(%d) = %q, want %q", fhir.Status(c), got, c)
		}
	}
	for status, want := range map[int]string{
		http.StatusOK:                    "ok",
		http.StatusAccepted:              "ok",
		http.StatusRequestEntityTooLarge: phivault.ETOOLARGE,
		http.StatusMethodNotAllowed:      phivault.EUNSUPPORTED,
		http.StatusTooManyRequests:       phivault.EUNAVAILABLE,
		http.StatusInternalServerError:   phivault.EINTERNAL,
		http.StatusTeapot:                phivault.EINTERNAL,
	} {
		if got := statusOutcome(status); got != want {
			t.Errorf("statusOutcome(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestBufferedResponse_code(t *testing.T) {
	var silent bufferedResponse
	if got := silent.code(); got != http.StatusOK {
		t.Errorf("a handler that wrote nothing: code() = %d, want 200", got)
	}
	written := bufferedResponse{header: http.Header{}}
	written.Write([]byte("{}"))
	written.WriteHeader(http.StatusNotFound) // too late: the body set 200
	if got := written.code(); got != http.StatusOK {
		t.Errorf("a body then a header: code() = %d, want 200", got)
	}
	refused := bufferedResponse{header: http.Header{}}
	refused.WriteHeader(http.StatusForbidden)
	if got := refused.code(); got != http.StatusForbidden {
		t.Errorf("code() = %d, want 403", got)
	}
}
