package phivault

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status and one OperationOutcome issue code
// in the api package.
const (
	EINVALID       = "invalid"       // malformed or invalid input (400)
	EUNPROCESSABLE = "unprocessable" // well-formed but fails FHIR validation (422)
	ENOTFOUND      = "not-found"     // no such resource, or the caller may not know it exists (404)
	EGONE          = "gone"          // the resource was deleted (410)
	ECONFLICT      = "conflict"      // a concurrent change won (409)
	EPRECONDITION  = "precondition"  // If-Match or conditional create failed (412)
	EUNAUTHORIZED  = "unauthorized"  // no valid credentials (401)
	EFORBIDDEN     = "forbidden"     // authenticated but not permitted (403)
	ETOOLARGE      = "too-large"     // request body over the limit (413)
	EUNSUPPORTED   = "unsupported"   // interaction or media type not supported (415/405 by context)
	EUNAVAILABLE   = "unavailable"   // sealed, or a dependency such as the audit log is down (503)
	EINTEGRITY     = "integrity"     // stored data failed authentication; never returned as data (500)
	EINTERNAL      = "internal"      // anything else (500)
)

// Error is an error whose Message and Issues are safe to show to the caller.
// They never contain PHI, key material, or internal details.
type Error struct {
	Code    string
	Message string
	Issues  []Issue // optional detail, e.g. one issue per invalid element
}

// Issue is one problem found in a request, in the shape of an
// OperationOutcome issue. Diagnostics never echo the offending value.
type Issue struct {
	Severity    string   // fatal, error, warning, information
	Code        string   // FHIR issue type: invalid, structure, required, value, not-supported, ...
	Diagnostics string   // human-readable, safe to show
	Expression  []string // FHIRPath of the element, e.g. Patient.birthDate
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s (%d issues)", e.Code, e.Message, len(e.Issues))
}

// Errorf returns an *Error with the given code and a formatted message.
// The arguments must not contain PHI.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL
// for any other non-nil error.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the safe message of the first *Error in err's chain,
// or "Internal error." for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrNotFound is returned by stores when a row does not exist.
var ErrNotFound = &Error{Code: ENOTFOUND, Message: "Resource not found."}

// ErrIntegrity is returned when a stored ciphertext fails authentication:
// it was altered, truncated, or moved to another row.
var ErrIntegrity = &Error{Code: EINTEGRITY, Message: "Stored data failed its integrity check; it was not returned."}
