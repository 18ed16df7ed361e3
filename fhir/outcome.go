package fhir

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/phivault/phivault"
)

// codes maps each phivault error code to its HTTP status and the FHIR
// OperationOutcome issue type. It is the one place this mapping lives.
var codes = map[string]struct {
	status int
	issue  string
}{
	phivault.EINVALID:       {http.StatusBadRequest, "invalid"},
	phivault.EUNPROCESSABLE: {http.StatusUnprocessableEntity, "processing"},
	phivault.ENOTFOUND:      {http.StatusNotFound, "not-found"},
	phivault.EGONE:          {http.StatusGone, "deleted"},
	phivault.ECONFLICT:      {http.StatusConflict, "conflict"},
	phivault.EPRECONDITION:  {http.StatusPreconditionFailed, "conflict"},
	phivault.EUNAUTHORIZED:  {http.StatusUnauthorized, "login"},
	phivault.EFORBIDDEN:     {http.StatusForbidden, "forbidden"},
	phivault.ETOOLARGE:      {http.StatusRequestEntityTooLarge, "too-costly"},
	phivault.EUNSUPPORTED:   {http.StatusUnsupportedMediaType, "not-supported"},
	phivault.EUNAVAILABLE:   {http.StatusServiceUnavailable, "transient"},
	phivault.EINTEGRITY:     {http.StatusInternalServerError, "exception"},
	phivault.EINTERNAL:      {http.StatusInternalServerError, "exception"},
}

// Status returns the HTTP status for a phivault error code.
func Status(code string) int {
	if c, ok := codes[code]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}

// OperationOutcome is the FHIR resource that reports errors.
type OperationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []OutcomeIssue `json:"issue"`
}

// OutcomeIssue is OperationOutcome.issue.
type OutcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// Outcome returns the HTTP status and the OperationOutcome for err. Only the
// safe message and issues of a *phivault.Error are shown; any other error
// becomes "Internal error." so internal details never reach a caller.
func Outcome(err error) (int, *OperationOutcome) {
	code := phivault.ErrorCode(err)
	c, ok := codes[code]
	if !ok {
		c = codes[phivault.EINTERNAL]
	}
	oo := &OperationOutcome{ResourceType: "OperationOutcome"}
	oo.Issue = append(oo.Issue, OutcomeIssue{Severity: "error", Code: c.issue, Diagnostics: phivault.ErrorMessage(err)})
	var pe *phivault.Error
	if errors.As(err, &pe) {
		for _, is := range pe.Issues {
			oo.Issue = append(oo.Issue, OutcomeIssue{
				Severity:    orString(is.Severity, "error"),
				Code:        orString(is.Code, c.issue),
				Diagnostics: is.Diagnostics,
				Expression:  is.Expression,
			})
		}
	}
	return c.status, oo
}

// OutcomeJSON is Outcome with the OperationOutcome encoded as JSON.
func OutcomeJSON(err error) (int, []byte) {
	status, oo := Outcome(err)
	b, mErr := json.Marshal(oo)
	if mErr != nil {
		// Cannot happen: the struct has only strings.
		panic("fhir: marshal OperationOutcome: " + mErr.Error())
	}
	return status, b
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
