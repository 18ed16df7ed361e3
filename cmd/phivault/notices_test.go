package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident/notice"
)

func TestPatientAddressee(t *testing.T) {
	tests := []struct {
		give       string
		wantStatus string
		wantName   string
		wantBlock  string
	}{
		{`{"name":[{"use":"old","family":"Old","given":["Ann"]},{"use":"official","family":"Quixote","given":["Zebulon","Q"],"prefix":["Mr"]}],
		  "address":[{"use":"old","line":["1 Old Rd"],"city":"Albany","state":"NY"},{"use":"home","line":["12 Larkspur Lane","Apt 4"],"city":"Boston","state":"ma","postalCode":"02110"}]}`,
			notice.StatusMail, "Mr Zebulon Q Quixote", "12 Larkspur Lane|Apt 4|Boston, MA 02110"},
		{`{"name":[{"text":"  Ida   Roe "}],"address":[{"type":"physical","line":["GPS 42.1"],"city":"X"},{"use":"work","line":["9 Elm St"],"postalCode":"03301"}]}`,
			notice.StatusMail, "Ida Roe", "9 Elm St|03301"},
		{`{"name":[{"family":"Roe"}],"address":[{"city":"Boston","state":"MA"}]}`, notice.StatusNoAddress, "", ""},
		{`{"address":[{"line":["1 Main"],"city":"Boston"}]}`, notice.StatusNoAddress, "", ""},
		{`{"name":[{"family":"Roe"}],"deceasedBoolean":true,"address":[{"line":["1 Main"],"city":"Boston"}]}`, notice.StatusDeceased, "", ""},
		{`{"name":[{"family":"Roe"}],"deceasedDateTime":"2025-01-01","address":[{"line":["1 Main"],"city":"Boston"}]}`, notice.StatusDeceased, "", ""},
		{`not json`, notice.StatusNoAddress, "", ""},
	}
	for _, tt := range tests {
		a := patientAddressee([]byte(tt.give))
		if a.Status != tt.wantStatus {
			t.Errorf("patientAddressee(%s).Status = %s, want %s", tt.give, a.Status, tt.wantStatus)
			continue
		}
		if tt.wantStatus != notice.StatusMail {
			continue
		}
		if a.Name != tt.wantName || strings.Join(a.Address.Block(), "|") != tt.wantBlock {
			t.Errorf("patientAddressee(%s) = %q %q, want %q %q", tt.give, a.Name, a.Address.Block(), tt.wantName, tt.wantBlock)
		}
	}
}

// TestIncidentsNotices drives "phivault incidents notices" against a real
// server: a privacy officer saves the letters and the mailing list of a
// breach to new files; a security admin and the operator are refused; a
// file is never overwritten; and the patients' names reach neither the
// server's log nor the data folder (the audit trail among it).
func TestIncidentsNotices(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	var initOut bytes.Buffer
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, &initOut, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	_, after, _ := strings.Cut(initOut.String(), "only its hash is kept):\n")
	operator := strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
	var logs bytes.Buffer
	a, err := openApp(ctx, Config{Data: dataDir(dir), Passphrase: "correct horse battery staple", Addr: "127.0.0.1:0",
		Audit: AuditConfig{WitnessFile: testWitness(dataDir(dir))}}, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.listen(ctx); err != nil {
		t.Fatal(err)
	}
	url, cacert := a.server.URL()+"/fhir", dataDir(dir).certFile()
	pem, err := os.ReadFile(cacert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	fhirDo := func(method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+operator)
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s = %d %s", method, path, res.StatusCode, b)
		}
		return b
	}
	create := func(body string) string {
		var p struct{ ID string }
		json.Unmarshal(fhirDo("POST", "/Patient", body), &p)
		return p.ID
	}
	mailable := create(`{"resourceType":"Patient","name":[{"use":"official","family":"Quixote","given":["Zebulon"]}],` +
		`"address":[{"use":"home","line":["12 Larkspur Lane"],"city":"Boston","state":"MA","postalCode":"02110"}]}`)
	noAddress := create(`{"resourceType":"Patient","name":[{"family":"Vandersloot","given":["Ottoline"]}]}`)
	shredded := create(`{"resourceType":"Patient","name":[{"family":"Pemberton","given":["Wilhelmina"]}],` +
		`"address":[{"use":"home","line":["3 Quarry Road"],"city":"Salem","state":"NH"}]}`)
	// The operator reads all three, then one is crypto-shredded.
	for _, id := range []string{mailable, noAddress, shredded} {
		fhirDo("GET", "/Patient/"+id, "")
	}
	fhirDo("POST", "/admin/patients/"+shredded+"/$shred", "")

	phivaultAs := func(token string, args ...string) (string, error) {
		t.Setenv("PHIVAULT_TOKEN", token)
		os.Unsetenv("PHIVAULT_TOKEN_FILE")
		var out, errb bytes.Buffer
		err := run(ctx, append(append([]string{args[0], args[1]}, "-url", url, "-cacert", cacert), args[2:]...), &out, &errb)
		return out.String(), err
	}
	out, err := phivaultAs(operator, "incidents", "open", "-title", "operator reads", "-severity", "high", "-user", phivault.OperatorID)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	id := regexp.MustCompile(`inc-[0-9a-f]{32}`).FindString(out)
	token := func(roles ...string) string {
		is, err := a.signIn.Sessions().Start(phivault.Principal{ID: "u-" + roles[0], Kind: phivault.PrincipalStaff, Roles: roles}, false)
		if err != nil {
			t.Fatal(err)
		}
		return is.AccessToken
	}
	officer, secAdmin := token("privacy-officer"), token("security-admin")
	work := t.TempDir()
	org := filepath.Join(work, "org.json")
	os.WriteFile(org, []byte(`{"organisation":{"name":"Hillside Clinic","phone":"1-800-555-0100","email":"privacy@hillside.example","contact":"Ada Byrne"},
		"what_happened":"An account read records it had no reason to read.","steps":"Watch your insurer's statements.","mitigation":"We closed the account."}`), 0o600)

	for who, tok := range map[string]string{"a security admin": secAdmin, "the operator": operator} {
		f := filepath.Join(work, "refused.pdf")
		if _, err := phivaultAs(tok, "incidents", "notices", id, "-org", org, "-out", f); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("%s: notices = %v, want a 403", who, err)
		}
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s: a refused request left %s", who, f)
		}
	}
	letters := filepath.Join(work, "letters.pdf")
	out, err = phivaultAs(officer, "incidents", "notices", id, "-format", "pdf", "-org", org, "-out", letters)
	if err != nil || !strings.Contains(out, "1 letters; 2 without a usable address") || !strings.Contains(out, "164.404(d)(2)(i)") {
		t.Fatalf("notices pdf = %q, %v", out, err)
	}
	b, err := os.ReadFile(letters)
	if err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("%%EOF")) {
		t.Fatalf("letters.pdf: %v %q", err, b[:min(len(b), 8)])
	}
	if fi, _ := os.Stat(letters); fi.Mode().Perm() != 0o600 {
		t.Errorf("letters.pdf mode %v, want 0600", fi.Mode().Perm())
	}
	// Never overwritten.
	if _, err := phivaultAs(officer, "incidents", "notices", id, "-org", org, "-out", letters); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("notices to an existing file = %v", err)
	}
	if b2, _ := os.ReadFile(letters); !bytes.Equal(b, b2) {
		t.Errorf("letters.pdf was changed")
	}
	mailing := filepath.Join(work, "mailing.csv")
	if _, err := phivaultAs(officer, "incidents", "notices", id, "-format", "csv", "-org", org, "-out", mailing); err != nil {
		t.Fatalf("notices csv: %v", err)
	}
	if b, _ := os.ReadFile(mailing); !strings.Contains(string(b), "Zebulon Quixote,12 Larkspur Lane,,,Boston,MA,02110") {
		t.Errorf("mailing.csv:\n%s", b)
	}
	hhs := filepath.Join(work, "hhs.csv")
	if _, err := phivaultAs(officer, "incidents", "notices", id, "-format", "hhs-csv", "-org", org, "-out", hhs); err != nil {
		t.Fatalf("notices hhs-csv: %v", err)
	}
	if b, _ := os.ReadFile(hhs); !strings.Contains(string(b), "Fewer Than 500 Individuals,Hillside Clinic") || strings.Contains(string(b), "Quixote") {
		t.Errorf("hhs.csv:\n%s", b)
	}

	// The names and addresses are in the files asked for, and nowhere
	// else: not in the log, not in the data folder (the audit trail).
	if err := a.audit.log.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"Zebulon", "Quixote", "Larkspur", "Ottoline", "Vandersloot"}
	if logs.Len() == 0 {
		t.Fatal("the server logged nothing: the log capture is broken")
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds %q", s)
		}
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", path, s)
			}
		}
		return nil
	})
}
