package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/phivault/phivault"
)

// Object is a decoded FHIR resource. Numbers are json.Number so decimals
// round-trip exactly.
type Object = map[string]any

// Parse decodes one resource from JSON and validates it against the R4
// definitions. Errors are *phivault.Error: EINVALID when data is not one JSON
// object, or its resourceType is missing, not a string or not an R4 resource
// type; EUNPROCESSABLE, with one issue per problem, when the resource fails
// validation. Diagnostics never echo the offending value.
func Parse(data []byte) (typ string, obj Object, err error) {
	obj, err = Decode(data)
	if err != nil {
		return "", nil, err
	}
	rt, ok := obj["resourceType"]
	if !ok {
		return "", nil, phivault.Errorf(phivault.EINVALID, "The resource has no resourceType.")
	}
	typ, ok = rt.(string)
	if !ok {
		return "", nil, phivault.Errorf(phivault.EINVALID, "The resourceType is not a string.")
	}
	if !IsResourceType(typ) {
		return "", nil, phivault.Errorf(phivault.EINVALID, "The resourceType is not an R4 resource type.")
	}
	if issues := Validate(typ, obj); len(issues) > 0 {
		return "", nil, &phivault.Error{
			Code:    phivault.EUNPROCESSABLE,
			Message: "The resource is not valid FHIR R4.",
			Issues:  issues,
		}
	}
	return typ, obj, nil
}

// Decode decodes one JSON object into an Object, keeping numbers as
// json.Number and rejecting trailing data. It does not validate.
// Errors are *phivault.Error with code EINVALID.
func Decode(data []byte) (Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, phivault.Errorf(phivault.EINVALID, "The body is not valid JSON.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, phivault.Errorf(phivault.EINVALID, "The body has data after the JSON object.")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, phivault.Errorf(phivault.EINVALID, "The body is not a JSON object.")
	}
	return obj, nil
}
