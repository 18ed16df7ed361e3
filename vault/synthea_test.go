package vault_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/testenv"
)

// TestSyntheaRoundTrip imports every patient of patients-100 as the
// transaction Bundle it is, then reads every resource back: it must equal
// what was sent, apart from the server-assigned id and meta and the
// rewritten urn:uuid: references.
func TestSyntheaRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	var resources int
	start := time.Now()
	step, i := testenv.SampleStep(), -1
	testenv.SyntheaBundles(t, "patients-100.tar.gz", func(name string, data []byte) {
		if i++; i%step != 0 {
			return
		}
		res, err := s.Bundle(ctx, data, "https://example.test/fhir")
		if err != nil {
			t.Fatalf("%s: Bundle = %v", name, err)
		}
		var sent struct {
			Entry []struct {
				FullURL  string         `json:"fullUrl"`
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		var got struct {
			Entry []struct {
				Response struct {
					Status   string `json:"status"`
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &sent); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(res.Body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Entry) != len(sent.Entry) {
			t.Fatalf("%s: %d response entries for %d sent", name, len(got.Entry), len(sent.Entry))
		}
		refs := map[string]string{}
		for i, e := range got.Entry {
			if e.Response.Status != "201 Created" {
				t.Fatalf("%s entry %d: status %q", name, i, e.Response.Status)
			}
			ref, _, _ := strings.Cut(e.Response.Location, "/_history/")
			refs[sent.Entry[i].FullURL] = ref
		}
		for i, e := range sent.Entry {
			want := e.Resource
			fhir.RewriteReferences(want, func(r string) string {
				if to, ok := refs[r]; ok {
					return to
				}
				return r
			})
			typ, id, _ := strings.Cut(refs[e.FullURL], "/")
			want["id"] = id
			back, err := s.Read(ctx, typ, id)
			if err != nil {
				t.Fatalf("%s entry %d: Read(%s) = %v", name, i, refs[e.FullURL], err)
			}
			gotRes, err := fhir.Decode(back.Body)
			if err != nil {
				t.Fatal(err)
			}
			meta := gotRes["meta"].(map[string]any)
			delete(meta, "versionId")
			delete(meta, "lastUpdated")
			if len(meta) == 0 {
				delete(gotRes, "meta")
			}
			if diff := cmp.Diff(normalize(t, want), normalize(t, gotRes)); diff != "" {
				t.Fatalf("%s entry %d (%s) differs (-sent +read):\n%s", name, i, typ, diff)
			}
			resources++
		}
	})
	t.Logf("imported and compared %d resources in %s", resources, time.Since(start).Round(time.Millisecond))
}

// normalize re-decodes v so numbers compare by their JSON text.
func normalize(tb testing.TB, v map[string]any) map[string]any {
	tb.Helper()
	b, err := fhir.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := fhir.Decode(b)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
