package fhir_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"sync"
	"testing"

	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/testenv"
)

// searchBundle is one Synthea transaction bundle, decoded with UseNumber,
// with its "urn:uuid:" references rewritten by fhir.RewriteReferences to
// the relative "Type/id" references a server stores.
type searchBundle struct {
	Name      string // e.g. p001.json
	PatientID string
	Entries   []searchEntry
}

type searchEntry struct {
	FullURL  string
	Type     string
	Resource map[string]any
}

var searchBundlesOnce = sync.OnceValues(readSearchBundles)

// mustSearchBundles returns the Synthea patients-100 bundles, or skips the
// test when the data is absent. Callers must not modify the resources:
// use decode on entry JSON for a private copy.
func mustSearchBundles(tb testing.TB) []searchBundle {
	tb.Helper()
	bs, err := searchBundlesOnce()
	if errors.Is(err, fs.ErrNotExist) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return bs
}

func readSearchBundles() ([]searchBundle, error) {
	files, err := testenv.ReadSynthea("patients-100.tar.gz")
	if err != nil {
		return nil, err
	}
	var out []searchBundle
	for _, f := range files {
		var raw struct {
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(f.Data, &raw); err != nil {
			return nil, err
		}
		b := searchBundle{Name: f.Name}
		for _, e := range raw.Entry {
			obj, err := decode(e.Resource)
			if err != nil {
				return nil, err
			}
			typ, _ := obj["resourceType"].(string)
			if typ == "Patient" {
				b.PatientID, _ = obj["id"].(string)
			}
			b.Entries = append(b.Entries, searchEntry{FullURL: e.FullURL, Type: typ, Resource: obj})
		}
		refs := map[string]string{}
		for _, e := range b.Entries {
			id, _ := e.Resource["id"].(string)
			refs[e.FullURL] = e.Type + "/" + id
		}
		for _, e := range b.Entries {
			fhir.RewriteReferences(e.Resource, func(ref string) string {
				if r, ok := refs[ref]; ok {
					return r
				}
				return ref
			})
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("no bundles in archive")
	}
	return out, nil
}

// decode decodes a resource as the server does: numbers as json.Number.
func decode(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// mustDecode is decode for literals in tests.
func mustDecode(tb testing.TB, s string) map[string]any {
	tb.Helper()
	m, err := decode([]byte(s))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
