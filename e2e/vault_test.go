package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/testenv"
)

// binary is the phivault binary TestMain built; empty when the end-to-end
// tests are off.
var binary string

// e2eEnabled reports whether PHIVAULT_E2E=1.
func e2eEnabled() bool { return os.Getenv("PHIVAULT_E2E") == "1" }

// requireE2E skips t unless the end-to-end tests are on.
func requireE2E(t *testing.T) {
	t.Helper()
	if !e2eEnabled() {
		t.Skip("set PHIVAULT_E2E=1 to run the end-to-end tests (.ci/run does)")
	}
	if binary == "" {
		t.Fatal("PHIVAULT_E2E=1 but no phivault binary was built")
	}
}

func TestMain(m *testing.M) {
	if !e2eEnabled() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "phivault-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binary, err = build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build phivault:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles ./cmd/phivault into dir and returns the binary's path.
func build(dir string) (string, error) {
	root, err := testenv.Root()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "phivault")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/phivault")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, b)
	}
	return out, nil
}

// output collects a process's output; safe for concurrent use.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) Bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.buf.Bytes())
}

func (o *output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Len()
}

// vault is one phivault data folder and, while started, the serve process
// running on it.
type vault struct {
	t        *testing.T
	dir      string // data folder
	witness  string // audit witness file outside it, named to init and serve
	tmp      string // TMPDIR of the server, so its temp files can be inspected
	pass     string
	extraEnv []string
	token    string
	cacert   string
	addr     string // listen address; default 127.0.0.1:0 (a free port)

	url    string // FHIR base, https://127.0.0.1:PORT/fhir
	client *http.Client
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	err    error         // cmd.Wait's result, set before done closes

	stdout, stderr output // of every serve run, in order
}

// newVault runs "phivault init" in a fresh data folder. extraEnv (e.g. a
// keyring choice) is set for every phivault process of the vault.
func newVault(t *testing.T, extraEnv ...string) *vault {
	t.Helper()
	base := t.TempDir()
	v := &vault{
		t:        t,
		dir:      filepath.Join(base, "data"),
		witness:  filepath.Join(base, "witness", "audit-checkpoints.log"),
		tmp:      filepath.Join(base, "tmp"),
		pass:     "e2e-passphrase-" + randomHex(8),
		extraEnv: extraEnv,
	}
	v.cacert = filepath.Join(v.dir, "tls", "cert.pem")
	if err := os.Mkdir(v.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "init", "-data", v.dir, "-audit-witness-file", v.witness)
	cmd.Env = v.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("phivault init: %v\n%s", err, out)
	}
	v.token = tokenFromInit(out)
	if v.token == "" {
		t.Fatalf("phivault init printed no admin token:\n%s", out)
	}
	t.Cleanup(func() {
		if v.running() {
			v.cmd.Process.Kill()
			<-v.done
		}
		if t.Failed() {
			t.Logf("server stderr (last lines):\n%s", tail(v.stderr.Bytes(), 30))
		}
	})
	return v
}

// tokenFromInit finds the token on the line after "Admin API token".
func tokenFromInit(out []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Admin API token") && sc.Scan() {
			return strings.TrimSpace(sc.Text())
		}
	}
	return ""
}

// env is the environment for phivault processes: this process's, minus any
// PHIVAULT_* setting, plus the passphrase (unless v.pass is empty: the
// server then starts sealed) and extra.
func (v *vault) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PHIVAULT_") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	if v.pass != "" {
		env = append(env, "PHIVAULT_PASSPHRASE="+v.pass)
	}
	env = append(env, "TMPDIR="+v.tmp)
	env = append(env, v.extraEnv...)
	return append(env, extra...)
}

var servingLine = regexp.MustCompile(`(?m)^phivault serving (https://\S+)$`)

// start runs "phivault serve" on a free port and waits until it listens.
func (v *vault) start() {
	v.t.Helper()
	if v.running() {
		v.t.Fatal("start: server already running")
	}
	from := v.stdout.Len()
	addr := v.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cmd := exec.Command(binary, "serve", "-data", v.dir, "-audit-witness-file", v.witness, "-addr", addr)
	cmd.Env = v.env()
	cmd.Stdout = &v.stdout
	cmd.Stderr = &v.stderr
	if err := cmd.Start(); err != nil {
		v.t.Fatalf("start phivault serve: %v", err)
	}
	v.cmd, v.done, v.err = cmd, make(chan struct{}), nil
	go func() {
		v.err = cmd.Wait()
		close(v.done)
	}()

	// Opening the key file runs scrypt (seconds); allow for a loaded machine.
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := servingLine.FindSubmatch(v.stdout.Bytes()[from:]); m != nil {
			v.url = string(m[1])
			break
		}
		select {
		case <-v.done:
			v.t.Fatalf("phivault serve exited before listening: %v\nstderr:\n%s", v.err, tail(v.stderr.Bytes(), 30))
		case <-deadline.C:
			v.t.Fatal("phivault serve did not print its URL within 2 minutes")
		case <-tick.C:
		}
	}
	v.client = v.httpClient()
}

func (v *vault) running() bool {
	if v.done == nil {
		return false
	}
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// stop interrupts the server as Ctrl-C would and requires a clean exit.
func (v *vault) stop() {
	v.t.Helper()
	if err := v.cmd.Process.Signal(os.Interrupt); err != nil {
		v.t.Fatalf("interrupt server: %v", err)
	}
	select {
	case <-v.done:
	case <-time.After(time.Minute):
		v.cmd.Process.Kill()
		<-v.done
		v.t.Fatal("server did not stop within a minute of SIGINT")
	}
	if v.err != nil {
		v.t.Fatalf("server exited with %v after SIGINT\nstderr:\n%s", v.err, tail(v.stderr.Bytes(), 30))
	}
	v.client.CloseIdleConnections()
}

// httpClient trusts only the data folder's self-signed certificate.
func (v *vault) httpClient() *http.Client {
	v.t.Helper()
	pem, err := os.ReadFile(v.cacert)
	if err != nil {
		v.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		v.t.Fatal("no certificate in " + v.cacert)
	}
	return &http.Client{
		Timeout: 3 * time.Minute,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 16,
		},
	}
}

// response is an HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send sends one request to the FHIR API: path is relative to the base URL
// ("/Patient?family=x"). header holds name, value pairs; a body is sent as
// application/fhir+json unless header sets Content-Type.
func (v *vault) send(ctx context.Context, method, path string, body []byte, header ...string) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.url+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// do is send that fails the test on a transport error.
func (v *vault) do(method, path string, body []byte, header ...string) *response {
	v.t.Helper()
	r, err := v.send(context.Background(), method, path, body, header...)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// count returns Bundle.total of a search with _summary=count.
func (v *vault) count(query string) int {
	v.t.Helper()
	sep := "?"
	if strings.Contains(query, "?") {
		sep = "&"
	}
	r := v.do(http.MethodGet, "/"+query+sep+"_summary=count", nil)
	var b struct {
		ResourceType string `json:"resourceType"`
		Total        *int   `json:"total"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &b) != nil || b.ResourceType != "Bundle" || b.Total == nil {
		v.t.Fatalf("GET %s with _summary=count: HTTP %d: %s", query, r.status, r.body)
	}
	return *b.Total
}

// cli runs "phivault GROUP SUBCOMMAND args..." against the server (its -url
// and -cacert go after the subcommand) with PHIVAULT_TOKEN and env set, and
// returns stdout and stderr together. It fails the test unless the run
// fails exactly when wantErr.
func (v *vault) cli(wantErr bool, env []string, args ...string) string {
	v.t.Helper()
	args = append(append(args[:2:2], "-url", v.url, "-cacert", v.cacert), args[2:]...)
	cmd := exec.Command(binary, args...)
	cmd.Env = v.env(append([]string{"PHIVAULT_TOKEN=" + v.token}, env...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); (err != nil) != wantErr {
		v.t.Fatalf("phivault %s: err %v, want error %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantErr, out.Bytes(), errOut.Bytes())
	}
	return out.String() + errOut.String()
}

// passwordCLI writes password to a file for PHIVAULT_USER_PASSWORD_FILE
// and returns v.cli with that variable set, for the users subcommands that
// take a password.
func (v *vault) passwordCLI(password string) func(wantErr bool, args ...string) string {
	v.t.Helper()
	pwFile := filepath.Join(v.t.TempDir(), "pw.txt")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		v.t.Fatal(err)
	}
	return func(wantErr bool, args ...string) string {
		v.t.Helper()
		return v.cli(wantErr, []string{"PHIVAULT_USER_PASSWORD_FILE=" + pwFile}, args...)
	}
}

// importer runs "phivault import" against the server with the given flags
// and returns its stdout and stderr.
func (v *vault) importer(args ...string) (stdout, stderr []byte, err error) {
	v.t.Helper()
	args = append([]string{"import", "-url", v.url, "-cacert", v.cacert, "-q"}, args...)
	cmd := exec.Command(binary, args...)
	cmd.Env = v.env("PHIVAULT_TOKEN=" + v.token)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
