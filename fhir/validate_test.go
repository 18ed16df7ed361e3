package fhir_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// syntheaResource is one entry resource of a Synthea bundle, as raw JSON.
type syntheaResource struct {
	Bundle string // e.g. p001.json, for failure messages
	Index  int
	JSON   []byte
}

var syntheaOnce = sync.OnceValues(readSynthea)

// mustSynthea returns every entry resource of the Synthea patients-100
// bundles, or skips the test when the data is absent.
func mustSynthea(tb testing.TB) []syntheaResource {
	tb.Helper()
	res, err := syntheaOnce()
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("Synthea data absent (%v); set PHIVAULT_SYNTHEA_DIR or put patients-100.tar.gz in ../shared/data/synthea-r4/", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func syntheaDir() (string, error) {
	if dir := os.Getenv("PHIVAULT_SYNTHEA_DIR"); dir != "" {
		return dir, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data", "synthea-r4"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

func readSynthea() ([]syntheaResource, error) {
	dir, err := syntheaDir()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "patients-100.tar.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var out []syntheaResource
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		var b struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.NewDecoder(tr).Decode(&b); err != nil {
			return nil, err
		}
		for i, e := range b.Entry {
			out = append(out, syntheaResource{Bundle: filepath.Base(h.Name), Index: i, JSON: e.Resource})
		}
	}
	return out, nil
}

func TestParse_Synthea(t *testing.T) {
	res := mustSynthea(t)
	if len(res) < 1000 {
		t.Fatalf("read %d Synthea resources, want the whole corpus", len(res))
	}
	types := map[string]int{}
	for _, r := range res {
		typ, obj, err := fhir.Parse(r.JSON)
		if err != nil {
			t.Errorf("%s entry %d: Parse: %v %+v", r.Bundle, r.Index, err, issuesOf(err))
			continue
		}
		types[typ]++
		out, err := fhir.Marshal(obj)
		if err != nil {
			t.Errorf("%s entry %d: Marshal: %v", r.Bundle, r.Index, err)
			continue
		}
		back, err := fhir.Decode(out)
		if err != nil {
			t.Errorf("%s entry %d: Decode(Marshal()): %v", r.Bundle, r.Index, err)
			continue
		}
		if diff := cmp.Diff(obj, back); diff != "" {
			t.Errorf("%s entry %d: round trip changed the resource (-parsed +reparsed):\n%s", r.Bundle, r.Index, diff)
		}
	}
	t.Logf("%d resources of %d types", len(res), len(types))
}

func issuesOf(err error) []phivault.Issue {
	var e *phivault.Error
	if errors.As(err, &e) {
		return e.Issues
	}
	return nil
}

func BenchmarkParse_Synthea(b *testing.B) {
	res := mustSynthea(b)
	var size int64
	for _, r := range res {
		size += int64(len(r.JSON))
	}
	b.SetBytes(size / int64(len(res)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, _, err := fhir.Parse(res[i%len(res)].JSON); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "res/s")
}

func BenchmarkValidate_Synthea(b *testing.B) {
	res := mustSynthea(b)
	objs := make([]fhir.Object, len(res))
	types := make([]string, len(res))
	for i, r := range res {
		obj, err := fhir.Decode(r.JSON)
		if err != nil {
			b.Fatal(err)
		}
		objs[i], types[i] = obj, obj["resourceType"].(string)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if issues := fhir.Validate(types[i%len(objs)], objs[i%len(objs)]); issues != nil {
			b.Fatal(issues)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "res/s")
}
