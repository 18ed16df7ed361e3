package e2e_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestSealedStart starts the server without its passphrase: it listens
// sealed, answers FHIR requests with 503, and "phivault unseal" and
// "phivault seal" (the real binary, over TLS) unseal and seal it.
func TestSealedStart(t *testing.T) {
	requireE2E(t)
	v := newVault(t)
	pass := v.pass
	v.pass = "" // serve gets no PHIVAULT_PASSPHRASE
	v.start()

	health := func() (int, string) {
		t.Helper()
		resp, err := v.client.Get(strings.TrimSuffix(v.url, "/fhir") + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var h struct{ Status string }
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("/healthz: %v: %s", err, b)
		}
		return resp.StatusCode, h.Status
	}
	wantSealed := func(when string, r *response) {
		t.Helper()
		var oo struct {
			ResourceType string
			Issue        []struct{ Diagnostics string }
		}
		if r.status != http.StatusServiceUnavailable || json.Unmarshal(r.body, &oo) != nil ||
			oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 || !strings.Contains(oo.Issue[0].Diagnostics, "sealed") {
			t.Fatalf("%s: HTTP %d: %s; want 503 with an OperationOutcome saying sealed", when, r.status, r.body)
		}
	}
	// cli runs "phivault seal" or "phivault unseal" against the server.
	cli := func(env []string, args ...string) string {
		t.Helper()
		args = append(args, "-url", v.url, "-cacert", v.cacert)
		cmd := exec.Command(binary, args...)
		cmd.Env = v.env(append([]string{"PHIVAULT_TOKEN=" + v.token}, env...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("phivault %s: %v\n%s", args[0], err, errOut.Bytes())
		}
		return out.String()
	}
	unseal := func() {
		t.Helper()
		if out := cli([]string{"PHIVAULT_PASSPHRASE=" + pass}, "unseal"); !strings.Contains(out, "unsealed") {
			t.Fatalf("phivault unseal printed %q", out)
		}
	}

	if status, s := health(); status != http.StatusServiceUnavailable || s != "sealed" {
		t.Fatalf("/healthz while sealed = %d %q, want 503 sealed", status, s)
	}
	patient := []byte(`{"resourceType":"Patient","name":[{"family":"Sealtest"}]}`)
	wantSealed("create while sealed", v.do(http.MethodPost, "/Patient", patient))
	wantSealed("search while sealed", v.do(http.MethodGet, "/Patient?_summary=count", nil))

	unseal()
	if status, s := health(); status != http.StatusOK || s != "ok" {
		t.Fatalf("/healthz after unseal = %d %q, want 200 ok", status, s)
	}
	r := v.do(http.MethodPost, "/Patient", patient)
	if r.status != http.StatusCreated {
		t.Fatalf("create after unseal: HTTP %d: %s", r.status, r.body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	read := "/Patient/" + created.ID
	if r := v.do(http.MethodGet, read, nil); r.status != http.StatusOK {
		t.Fatalf("read after unseal: HTTP %d: %s", r.status, r.body)
	}

	if out := cli(nil, "seal"); !strings.Contains(out, "sealed") {
		t.Fatalf("phivault seal printed %q", out)
	}
	wantSealed("read right after seal", v.do(http.MethodGet, read, nil))
	wantSealed("search right after seal", v.do(http.MethodGet, "/Patient?family=sealtest", nil))
	if status, s := health(); status != http.StatusServiceUnavailable || s != "sealed" {
		t.Fatalf("/healthz after seal = %d %q, want 503 sealed", status, s)
	}

	unseal()
	if r := v.do(http.MethodGet, read, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "Sealtest") {
		t.Fatalf("read after the second unseal: HTTP %d: %s", r.status, r.body)
	}
	v.stop()
	if bytes.Contains(v.stderr.Bytes(), []byte(pass)) {
		t.Error("the server log shows the passphrase")
	}
}
