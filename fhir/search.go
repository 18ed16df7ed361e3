package fhir

import (
	"slices"
	"strings"
)

//go:generate go run ./internal/gensearch -o searchparams_gen.go

// SearchParam describes one supported search parameter of one resource type.
// Values returned by LookupParam and SearchParams are shared and must not be
// modified.
type SearchParam struct {
	Name    string   // e.g. "birthdate"
	Type    string   // "string","token","reference","date","uri","number","quantity","special"
	Paths   []string // simplified element paths, e.g. "Patient.birthDate"
	Targets []string // reference target types, if restricted
}

// LookupParam returns the supported search parameter name of resourceType.
func LookupParam(resourceType, name string) (*SearchParam, bool) {
	params := searchParamTable[resourceType]
	i, ok := slices.BinarySearchFunc(params, name, func(p SearchParam, name string) int {
		return strings.Compare(p.Name, name)
	})
	if !ok {
		return nil, false
	}
	return &params[i], true
}

// SearchParams returns the supported search parameters of resourceType,
// sorted by name, for the CapabilityStatement.
func SearchParams(resourceType string) []*SearchParam {
	params := searchParamTable[resourceType]
	out := make([]*SearchParam, len(params))
	for i := range params {
		out[i] = &params[i]
	}
	return out
}

// SearchTypes returns the resource types that have any supported search
// parameter, sorted.
func SearchTypes() []string {
	types := make([]string, 0, len(searchParamTable))
	for t := range searchParamTable {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// hasTarget reports whether a reference to typ may be a value of p.
func (p *SearchParam) hasTarget(typ string) bool {
	return len(p.Targets) == 0 || slices.Contains(p.Targets, typ)
}
