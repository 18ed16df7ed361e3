package fhir

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

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
	phivault.ETOOLARGE:      {http.StatusRequestEntityTooLarge, "too-long"},
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

// Messages shown for errors whose own text must not reach the caller.
const (
	msgInternal  = "Internal error."
	msgIntegrity = "Integrity check failed: the stored data was altered or misplaced and was not returned."
)

// NewOutcome returns an OperationOutcome with one issue.
func NewOutcome(severity, code, diagnostics string) *OperationOutcome {
	return &OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []OutcomeIssue{{Severity: severity, Code: code, Diagnostics: diagnostics}},
	}
}

// Outcome returns the HTTP status and the OperationOutcome for err. Only the
// safe message and issues of a *phivault.Error are shown; any other error,
// and any internal or integrity error, gets a fixed message so internal
// details never reach a caller.
func Outcome(err error) (int, *OperationOutcome) {
	var pe *phivault.Error
	if !errors.As(err, &pe) {
		c := codes[phivault.EINTERNAL]
		return c.status, NewOutcome("error", c.issue, msgInternal)
	}
	c, ok := codes[pe.Code]
	msg := pe.Message
	switch {
	case !ok || pe.Code == phivault.EINTERNAL:
		c, msg = codes[phivault.EINTERNAL], msgInternal
	case pe.Code == phivault.EINTEGRITY:
		msg = msgIntegrity
	}
	oo := NewOutcome("error", c.issue, msg)
	{
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

// outcomeType is the Content-Type of an OperationOutcome answer.
const outcomeType = "application/fhir+json; charset=utf-8"

// WriteOutcome answers w with err as an OperationOutcome (see [Outcome]):
// the status of err's code and only a *phivault.Error's safe message. It is
// the error writer of the JSON routes outside the FHIR REST API (audit,
// admin, security). Headers already set on w, such as a WWW-Authenticate
// challenge, are kept.
func WriteOutcome(w http.ResponseWriter, err error) {
	status, body := OutcomeJSON(err)
	h := w.Header()
	h.Set("Content-Type", outcomeType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
