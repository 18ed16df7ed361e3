package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Marshal encodes obj as compact JSON with keys sorted and without HTML
// escaping, so narrative such as "<div>" stays as is.
func Marshal(obj Object) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		// The cause may quote a value (an invalid json.Number), so it is
		// not passed on.
		return nil, errors.New("fhir: marshal: the object holds a value JSON cannot encode")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
