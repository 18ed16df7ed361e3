package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadInputs reads every input form phivault import takes: a Bundle, a
// single resource, NDJSON (batched into transactions of PUTs), a folder,
// and a .tar.gz, and checks the transactions it would send.
func TestReadInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bundle.json", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`)
	write("one.json", `{"resourceType":"Patient","id":"p1"}`)
	write("many.ndjson", `{"resourceType":"Patient","id":"a"}
{"resourceType":"Observation","status":"final","code":{"text":"x"}}

{"resourceType":"Patient","id":"b"}
`)
	write("ignored.txt", "not FHIR")

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	member := []byte(`{"resourceType":"Patient","id":"t1"}`)
	if err := tw.WriteHeader(&tar.Header{Name: "x/t1.json", Mode: 0o600, Size: int64(len(member)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(member); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		t.Fatal(err)
	}
	write("archive.tar.gz", buf.String())

	type request struct{ Method, URL string }
	var jobs []importJob
	var requests []request
	if err := readInputs(dir, 2, func(j importJob) error {
		jobs = append(jobs, j)
		var b struct {
			Type  string
			Entry []struct{ Request request }
		}
		if err := json.Unmarshal(j.body, &b); err != nil {
			t.Fatalf("%s: %v", j.name, err)
		}
		if b.Type != "transaction" || len(b.Entry) != j.n {
			t.Errorf("%s: type %q with %d entries, want a transaction of %d", j.name, b.Type, len(b.Entry), j.n)
		}
		for _, e := range b.Entry {
			requests = append(requests, e.Request)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// archive.tar.gz (1), bundle.json (1), many.ndjson in batches of 2 (2+1), one.json (1)
	if len(jobs) != 5 {
		t.Fatalf("read %d bundles, want 5", len(jobs))
	}
	want := []request{
		{"PUT", "Patient/t1"},
		{"POST", "Patient"},
		{"PUT", "Patient/a"}, {"POST", "Observation"},
		{"PUT", "Patient/b"},
		{"PUT", "Patient/p1"},
	}
	if len(requests) != len(want) {
		t.Fatalf("requests = %v, want %v", requests, want)
	}
	for i := range want {
		if requests[i] != want[i] {
			t.Errorf("request %d = %v, want %v", i, requests[i], want[i])
		}
	}
	if jobs[0].key == jobs[1].key || jobs[0].key == "" {
		t.Error("journal keys must identify bundles")
	}

	t.Run("ErrNotJSON", func(t *testing.T) {
		// A missing file is an error too: the write must succeed, and the
		// error must be the one about line 2, or this cannot fail.
		bad := filepath.Join(t.TempDir(), "bad.ndjson")
		if err := os.WriteFile(bad, []byte("{\"resourceType\":\"Patient\"}\nnot json\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := readInputs(bad, 10, func(importJob) error { return nil })
		if err == nil {
			t.Fatal("an NDJSON line that is not JSON was accepted")
		}
		if !strings.Contains(err.Error(), "line 2 is not JSON") {
			t.Errorf("error = %v, want it to name line 2", err)
		}
	})
}

// TestOpenJournal_Reopen checks that a journal written by one import is
// read back by the next, and that a journal that exists but is not a
// readable file stops the import.
func TestOpenJournal_Reopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "import.journal")
	j, err := openJournal(path, "https://example.org/fhir")
	if err != nil {
		t.Fatalf("new journal: %v", err)
	}
	if j.has("k1") {
		t.Fatal("a new journal has k1")
	}
	if err := j.add("k1"); err != nil {
		t.Fatal(err)
	}
	j.close()
	j, err = openJournal(path, "https://example.org/fhir")
	if err != nil {
		t.Fatalf("reopened journal: %v", err)
	}
	defer j.close()
	if !j.has("k1") || j.has("k2") {
		t.Errorf("reopened journal: has(k1) = %v, has(k2) = %v; want true, false", j.has("k1"), j.has("k2"))
	}
	if _, err := openJournal(dir, "https://example.org/fhir"); err == nil {
		t.Error("a folder was accepted as the journal")
	}
}
