package fhir

import (
	"fmt"

	"github.com/phivault/phivault"
)

// Compartment returns the id of the Patient whose compartment holds obj, a
// resource of type typ, or "". For a Patient it is obj's own id. Otherwise
// the compartment params of typ in compartmentdefinition-patient.json are
// tried in priority order patient, subject, then the rest as listed, and the
// id of the first local "Patient/<id>" reference found (LocalRef) is
// returned.
//
// A reference at a compartment param that is about a Patient but is not a
// local one is an error (EUNPROCESSABLE): an absolute URL ending in
// "Patient/<id>", an unresolved conditional "Patient?…", a reference to a
// contained Patient, or a Reference of type Patient with no literal
// reference. Storing such a resource outside every compartment would put a
// patient's data under the shared key, readable by all staff and out of
// reach of the patient's access report and shred.
func Compartment(typ string, obj map[string]any) (string, error) {
	if typ == "Patient" {
		id, _ := obj["id"].(string)
		return id, nil
	}
	params := compartmentParamTable[typ]
	found := ""
	var err error
	for i := range params {
		for _, path := range params[i].Paths {
			walkPath(obj, path, func(v any) {
				m, ok := v.(map[string]any)
				if !ok || err != nil {
					return
				}
				ref, hasRef := m["reference"].(string)
				if t, id, ok := LocalRef(ref); ok {
					if t == "Patient" && found == "" {
						found = id
					}
					return
				}
				refType, _ := m["type"].(string)
				if namesPatient(ref) || containedPatient(obj, ref) || (!hasRef && refType == "Patient") {
					err = foreignPatient(path)
				}
			})
			if err != nil {
				return "", err
			}
		}
	}
	return found, nil
}

// foreignPatient is the error for a Patient reference at path that does
// not name a Patient of this server.
func foreignPatient(path string) *phivault.Error {
	msg := fmt.Sprintf("%s must reference a Patient of this server as Patient/<id> (or a Patient of the same Bundle).", path)
	return &phivault.Error{Code: phivault.EUNPROCESSABLE, Message: msg,
		Issues: []phivault.Issue{{Severity: "error", Code: "invalid", Diagnostics: msg, Expression: []string{path}}}}
}

// containedPatient reports whether ref ("#id") names a Patient contained in
// obj.
func containedPatient(obj map[string]any, ref string) bool {
	if len(ref) < 2 || ref[0] != '#' {
		return false
	}
	contained, _ := obj["contained"].([]any)
	for _, c := range contained {
		m, _ := c.(map[string]any)
		if id, _ := m["id"].(string); id == ref[1:] {
			rt, _ := m["resourceType"].(string)
			return rt == "Patient"
		}
	}
	return false
}

// IsCompartmentType reports whether a resource of type typ can be in a
// Patient compartment.
func IsCompartmentType(typ string) bool {
	return typ == "Patient" || len(compartmentParamTable[typ]) > 0
}
