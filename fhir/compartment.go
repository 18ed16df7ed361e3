package fhir

// Compartment returns the id of the Patient whose compartment holds obj, a
// resource of type typ, or "". For a Patient it is obj's own id. Otherwise
// the compartment params of typ in compartmentdefinition-patient.json are
// tried in priority order patient, subject, then the rest as listed, and the
// id of the first relative "Patient/<id>" reference found is returned.
func Compartment(typ string, obj map[string]any) string {
	if typ == "Patient" {
		id, _ := obj["id"].(string)
		return id
	}
	params := compartmentParamTable[typ]
	for i := range params {
		for _, path := range params[i].Paths {
			found := ""
			walkPath(obj, path, func(v any) {
				m, ok := v.(map[string]any)
				if !ok || found != "" {
					return
				}
				ref, _ := m["reference"].(string)
				if t, id, ok := strictRelativeRef(ref); ok && t == "Patient" {
					found = id
				}
			})
			if found != "" {
				return found
			}
		}
	}
	return ""
}

// IsCompartmentType reports whether a resource of type typ can be in a
// Patient compartment.
func IsCompartmentType(typ string) bool {
	return typ == "Patient" || len(compartmentParamTable[typ]) > 0
}
