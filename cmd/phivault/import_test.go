package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
// read back by the next, that a journal that exists but is not a readable
// file stops the import, and that another vault's journal is refused.
func TestOpenJournal_Reopen(t *testing.T) {
	const install, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	dir := t.TempDir()
	path := filepath.Join(dir, "import.journal")
	j, err := openJournal(path, install)
	if err != nil {
		t.Fatalf("new journal: %v", err)
	}
	if j.location("k1") != "" {
		t.Fatal("a new journal has k1")
	}
	if err := j.add("k1", "Patient/p1"); err != nil {
		t.Fatal(err)
	}
	j.close()
	j, err = openJournal(path, install)
	if err != nil {
		t.Fatalf("reopened journal: %v", err)
	}
	defer j.close()
	if got, got2 := j.location("k1"), j.location("k2"); got != "Patient/p1" || got2 != "" {
		t.Errorf("reopened journal: location(k1) = %q, location(k2) = %q; want Patient/p1, \"\"", got, got2)
	}
	if _, err := openJournal(dir, install); err == nil {
		t.Error("a folder was accepted as the journal")
	}
	if _, err := openJournal(path, other); err == nil {
		t.Error("the journal of another install was accepted")
	}
}

// TestOpenJournal_unsafeLocation checks that a journaled location that is
// no "Type/id" path (an edited journal) counts as not journaled, so that
// the confirming GET never goes to another path of the server.
func TestOpenJournal_unsafeLocation(t *testing.T) {
	const install = "0123456789abcdef0123456789abcdef"
	path := filepath.Join(t.TempDir(), "import.journal")
	data := "install " + install + "\nk1 Patient/..\nk2 Patient/p2\nk3 ../metadata\nk4 Patient/.\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := openJournal(path, install)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	for _, tt := range []struct{ key, want string }{{"k1", ""}, {"k2", "Patient/p2"}, {"k3", ""}, {"k4", ""}} {
		if got := j.location(tt.key); got != tt.want {
			t.Errorf("location(%s) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestFirstLocation(t *testing.T) {
	for _, tt := range []struct{ give, want string }{
		{`{"resourceType":"Bundle","entry":[{"response":{"status":"201","location":"https://v.test/fhir/Patient/abc/_history/1"}}]}`, "Patient/abc"},
		{`{"resourceType":"Bundle","entry":[{"response":{"status":"200"}},{"response":{"location":"Observation/o-1"}}]}`, "Observation/o-1"},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"../../etc/passwd"}}]}`, ""},
		// Valid FHIR ids, but "." and ".." are no path segment of their own.
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/.."}}]}`, ""},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/."}}]}`, ""},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/..."}}]}`, ""},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/../_history/1"}}]}`, ""},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/a..b"}}]}`, "Patient/a..b"},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/.a"}}]}`, "Patient/.a"},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"NotAType/abc"}}]}`, ""},
		{`not json`, ""},
	} {
		if got := firstLocation([]byte(tt.give)); got != tt.want {
			t.Errorf("firstLocation(%s) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestImportSend_confirm checks that a journaled bundle is skipped only
// when the server still has its first resource, and sent again otherwise.
func TestImportSend_confirm(t *testing.T) {
	var posts int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/Patient/kept":
			w.Write([]byte(`{"resourceType":"Patient","id":"kept"}`))
		case r.Method == http.MethodGet:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodPost:
			posts++
			w.Write([]byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","location":"Patient/new/_history/1"}}]}`))
		}
	}))
	defer srv.Close()
	cl := &apiClient{base: srv.URL, token: "t", http: srv.Client()}
	j, err := openJournal("off", "")
	if err != nil {
		t.Fatal(err)
	}
	c := &importCommand{stdout: io.Discard, stderr: io.Discard}
	var st importStats
	ctx := context.Background()
	for _, job := range []importJob{
		{name: "kept", body: []byte(`{}`), n: 3, key: "k1", confirm: "Patient/kept"},
		{name: "lost", body: []byte(`{}`), n: 5, key: "k2", confirm: "Patient/lost"},
	} {
		if err := c.send(ctx, cl, j, job, &st); err != nil {
			t.Fatal(err)
		}
	}
	if posts != 1 || st.skipped.Load() != 3 || st.done.Load() != 5 || st.resent.Load() != 1 {
		t.Errorf("posts %d, skipped %d, done %d, resent %d; want 1, 3, 5, 1", posts, st.skipped.Load(), st.done.Load(), st.resent.Load())
	}
	if got := j.location("k2"); got != "Patient/new" {
		t.Errorf("journal location of the resent bundle = %q, want Patient/new", got)
	}
}

// TestImport_tokenRefused checks that an import whose token the server
// refuses stops at once and says the token is at fault, instead of
// reporting every bundle as failed and asking to fix them.
func TestImport_tokenRefused(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fhir/metadata" {
			w.Write([]byte(`{"resourceType":"CapabilityStatement"}`))
			return
		}
		posts.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"The bearer token is not valid."}]}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	for i := range 20 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.json", i)), []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"p%d"}`, i)), 0o600)
	}
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	t.Setenv("PHIVAULT_TOKEN", "wrong")
	var stdout, stderr bytes.Buffer
	c := &importCommand{stdout: &stdout, stderr: &stderr}
	err := c.Run(context.Background(), []string{"-url", srv.URL + "/fhir", "-cacert", cert, "-q", "-j", "1", "-batch", "1", "-journal", "off", dir})
	if err == nil || !strings.Contains(err.Error(), "refused the API token") {
		t.Errorf("import with a refused token = %v, want an error about the token", err)
	}
	if n := posts.Load(); n > 2 {
		t.Errorf("%d bundles sent after the first 401, want the import to stop", n-1)
	}
	if strings.Contains(stderr.String(), "HTTP 401") {
		t.Errorf("stderr blames the bundles: %s", stderr.String())
	}
}
