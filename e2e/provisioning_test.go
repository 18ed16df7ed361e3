package e2e_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TestProvisioning drives the real binary's users, clients and training
// subcommands against a running server: a physician with a password and
// TOTP, asked for by one security admin and approved by another, training
// dates (one and by CSV, all-or-nothing), suspension, and public and
// backend clients (those that reach patients' records asked for by one
// admin and approved by another, the others registered at once); no
// secret reaches a response or the log.
func TestProvisioning(t *testing.T) {
	requireE2E(t)
	v := newVault(t)
	v.start()
	dir := t.TempDir()
	const password = "Velvet-Harbour-Lantern-8830"
	// cli runs the binary with the bootstrap token and returns its
	// output; wantErr says it must fail.
	cli := v.passwordCLI(password)
	adm := newAdmins(t, v, password)

	// The bootstrap token cannot make a physician; one admin asks, the
	// other approves, and the account exists only then.
	cli(true, "users", "add", "-username", "dr.e2e", "-role", "physician")
	out := adm.granted("users", "add", "-username", "dr.e2e", "-role", "physician", "-department", "cardiology",
		"-practitioner", "prac-1", "-training", "2030-06-30")
	if !strings.Contains(out, "User dr.e2e") || !strings.Contains(out, "roles physician") {
		t.Fatalf("approval of users add printed %q", out)
	}
	out = adm.ask(false, "users", "enroll-totp", "-user", "dr.e2e")
	uri := regexp.MustCompile(`otpauth://\S+`).FindString(out)
	if uri == "" {
		t.Fatalf("users enroll-totp printed %q", out)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cli(true, "users", "enroll-totp", "-user", "dr.e2e", "-code", "000000x")
	if out := cli(false, "users", "enroll-totp", "-user", "dr.e2e", "-code", code); !strings.Contains(out, "enrolled") {
		t.Fatalf("enroll-totp printed %q", out)
	}
	adm.ask(true, "users", "add", "-username", "dr.e2e", "-role", "physician") // taken
	adm.ask(true, "users", "add", "-username", "weak", "-role", "wizard")      // unknown role
	adm.granted("users", "add", "-username", "nurse.e2e", "-role", "nurse,front-desk")
	out = cli(false, "users", "list")
	if !regexp.MustCompile(`dr\.e2e\s+staff\s+active\s+physician\s+cardiology\s+2030-06-30\s+totp`).MatchString(out) ||
		!strings.Contains(out, "nurse,front-desk") {
		t.Fatalf("users list printed:\n%s", out)
	}

	// Training: one account, then a CSV with a bad row (nothing changes),
	// then a good one.
	cli(false, "users", "set-training", "-user", "nurse.e2e", "-until", "2029-01-31")
	csvFile := filepath.Join(dir, "training.csv")
	os.WriteFile(csvFile, []byte("username,valid_until\ndr.e2e,2031-01-01\nnobody,2031-01-01\nnurse.e2e,31.01.2031\n"), 0o600)
	if out := cli(true, "training", "import", csvFile); !strings.Contains(out, "line 3") || !strings.Contains(out, "line 4") || strings.Contains(out, "nobody") {
		t.Fatalf("bad CSV import printed %q", out)
	}
	if out := cli(false, "users", "list"); !strings.Contains(out, "2030-06-30") || !strings.Contains(out, "2029-01-31") {
		t.Fatalf("a bad CSV import changed training dates:\n%s", out)
	}
	os.WriteFile(csvFile, []byte("dr.e2e,2031-01-01\nnurse.e2e,2031-02-01\n"), 0o600)
	if out := cli(false, "training", "import", csvFile); !strings.Contains(out, "Imported 2 rows; 2 accounts changed") {
		t.Fatalf("training import printed %q", out)
	}

	if out := cli(false, "users", "suspend", "-user", "nurse.e2e"); !strings.Contains(out, "suspended") {
		t.Fatalf("users suspend printed %q", out)
	}

	// Clients: a backend client with a public EC key, which reaches every
	// record: the bootstrap token cannot register it, one admin asks and
	// another approves. A private key is refused.
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeJWKS := func(name string, k any) string {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	addLab := []string{"clients", "add-backend", "-name", "lab system", "-jwks", writeJWKS("pub.json", &priv.PublicKey), "-scope", "system/*.rs"}
	if out := cli(true, addLab...); !strings.Contains(out, "403") {
		t.Fatalf("add-backend with the bootstrap token printed %q, want a 403", out)
	}
	out = adm.granted(addLab...)
	clientID := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out)
	if clientID == nil {
		t.Fatalf("approval of add-backend printed %q", out)
	}
	if out := adm.ask(true, "clients", "add-backend", "-name", "leaky", "-jwks", writeJWKS("priv.json", priv), "-scope", "system/*.rs"); !strings.Contains(out, "private") {
		t.Fatalf("add-backend with a private key printed %q", out)
	}
	adm.granted("clients", "add-public", "-name", "patient app", "-redirect-uri", "https://app.example.org/cb", "-scope", "patient/*.rs openid fhirUser")
	adm.ask(true, "clients", "add-public", "-name", "bad app", "-redirect-uri", "http://evil.example.org/cb", "-scope", "patient/*.rs")
	// A directory feed reaches shared resources only: at once, even with
	// the bootstrap token.
	if out := cli(false, "clients", "add-backend", "-name", "directory", "-jwks", writeJWKS("pub.json", &priv.PublicKey), "-scope", "system/Practitioner.rs"); !strings.Contains(out, "client_id: ") {
		t.Fatalf("add-backend of a directory feed printed %q", out)
	}
	out = cli(false, "clients", "suspend", "-client", clientID[1])
	if !strings.Contains(out, "suspended") {
		t.Fatalf("clients suspend printed %q", out)
	}
	out = cli(false, "clients", "list")
	if !regexp.MustCompile(clientID[1]+`\s+backend\s+suspended\s+lab system`).MatchString(out) || !strings.Contains(out, "patient app") {
		t.Fatalf("clients list printed:\n%s", out)
	}

	// SCIM: a dedicated token (the admin token is refused), create, filter,
	// deactivate; the CLI sees the change.
	tokOut, err := exec.Command(binary, "users", "scim-token", "-data", v.dir).CombinedOutput()
	scimTok := regexp.MustCompile(`(?m)^\S{20,}$`).FindString(string(tokOut))
	if err != nil || scimTok == "" {
		t.Fatalf("users scim-token: %v: %s", err, tokOut)
	}
	scimURL := strings.TrimSuffix(v.url, "/fhir") + "/scim/v2"
	scimDo := func(token, method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, scimURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := v.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	if st, b := scimDo(v.token, "GET", "/Users", ""); st != 401 {
		t.Errorf("SCIM with the admin token = %d %s, want 401", st, b)
	}
	st, b := scimDo(scimTok, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"idp.user","externalId":"okta-1","roles":[{"value":"nurse"}],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"icu"}}`)
	var su struct{ ID string }
	if st != 201 || json.Unmarshal(b, &su) != nil || su.ID == "" {
		t.Fatalf("SCIM POST /Users = %d %s", st, b)
	}
	if st, b := scimDo(scimTok, "GET", "/Users?filter=userName%20eq%20%22idp.user%22", ""); st != 200 || !bytes.Contains(b, []byte(`"totalResults":1`)) {
		t.Fatalf("SCIM filter = %d %s", st, b)
	}
	if st, b := scimDo(scimTok, "PATCH", "/Users/"+su.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`); st != 200 {
		t.Fatalf("SCIM PATCH active=false = %d %s", st, b)
	}
	if out := cli(false, "users", "list"); !regexp.MustCompile(`idp\.user\s+staff\s+suspended\s+nurse\s+icu`).MatchString(out) {
		t.Fatalf("users list after SCIM deactivation:\n%s", out)
	}

	// The admin API never shows credentials, and the log has none either.
	r := v.do(http.MethodGet, "/admin/users", nil)
	if r.status != 200 {
		t.Fatalf("GET /admin/users = %d %s", r.status, r.body)
	}
	secrets := []string{"$argon2id", password, key.Secret()}
	for _, p := range adm.people {
		secrets = append(secrets, p.password, p.totpSecret)
	}
	for _, secret := range secrets {
		if bytes.Contains(r.body, []byte(secret)) || bytes.Contains(v.stderr.Bytes(), []byte(secret)) {
			t.Errorf("a secret (%.10s...) is in the admin API answer or the server log", secret)
		}
	}
	for _, name := range []string{"dr.e2e", "nurse.e2e", "idp.user"} {
		if bytes.Contains(v.stderr.Bytes(), []byte(name)) {
			t.Errorf("the server log holds the username %s", name)
		}
	}
}
