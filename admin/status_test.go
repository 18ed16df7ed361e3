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
