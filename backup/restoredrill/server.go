package restoredrill

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/api"
)

// serverEnvAllowed are the variables, or prefixes ending in "_", a
// scratch server gets from the drill's environment: what the process and
// the keyring need. Everything else (remote witnesses, syslog and CEF
// forwarding, alert notifiers, schedules, the store URL) is left out, so
// that the scratch server cannot reach the live vault's outside world.
var serverEnvAllowed = []string{
	"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ",
	"GORACE", "GOCOVERDIR", "GOMAXPROCS", "GOMEMLIMIT",
	"PHIVAULT_KEYRING", "PHIVAULT_KMS_", "PHIVAULT_PKCS11_", "AWS_", "SOFTHSM2_CONF",
	"PHIVAULT_PASSPHRASE", "PHIVAULT_PASSPHRASE_FILE",
}

// ServerEnv returns the variables of environ that a scratch server (and
// the "audit verify" run on the scratch folder) may see: see the package
// documentation.
func ServerEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		for _, a := range serverEnvAllowed {
			if k == a || strings.HasSuffix(a, "_") && strings.HasPrefix(k, a) {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

// server is a phivault server process serving the scratch folder.
type server struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, once done
	log    string        // the file of its standard error
	base   string        // FHIR base URL
	token  string        // the scratch bootstrap token
	client *http.Client
}

// prepare readies the scratch folder for a server: a scratch witness file
// holding the restored checkpoint log and the manifest's checkpoint, the
// folder's record of its witness path pointed at it, and a new bootstrap
// admin token. It returns the token.
func (d *drill) prepare() (string, error) {
	log, err := os.ReadFile(filepath.Join(d.data, "audit-checkpoints.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if cp := []byte(d.m.Checkpoint); len(cp) > 0 && !bytes.Contains(log, cp) {
		log = append(log, cp...)
		log = append(log, '\n')
	}
	if err := os.MkdirAll(filepath.Dir(d.witness), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(d.witness, log, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d.data, "audit-witness-file"), []byte(d.witness+"\n"), 0o600); err != nil {
		return "", err
	}
	token, hash, err := api.NewToken(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d.data, "admin-token.sha256"), []byte(hex.EncodeToString(hash)+"\n"), 0o600); err != nil {
		return "", err
	}
	return token, nil
}

// startServer prepares the scratch folder and starts "phivault serve" on
// it on a random loopback port; it returns once the server printed its
// URL.
func (d *drill) startServer(ctx context.Context) (*server, error) {
	token, err := d.prepare()
	if err != nil {
		return nil, fmt.Errorf("prepare the scratch folder: %w", err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(d.data, "tls", "cert.pem"))
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("the restored folder has no TLS certificate (tls/cert.pem) to trust")
	}
	s := &server{done: make(chan struct{}), token: token, log: filepath.Join(filepath.Dir(d.data), "server.log"),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}}}
	logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	urls := make(chan string, 1)
	s.cmd = d.o.Command(ctx, "serve", "-data", d.data, "-addr", "127.0.0.1:0", "-audit-witness-file", d.witness)
	s.cmd.Env = ServerEnv(d.o.Environ)
	if d.o.Passphrase != "" {
		s.cmd.Env = append(withoutPassphrase(s.cmd.Env), "PHIVAULT_PASSPHRASE="+d.o.Passphrase)
	}
	s.cmd.Stdout = &urlWatcher{urls: urls}
	s.cmd.Stderr = logFile
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start phivault serve: %w", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	timer := time.NewTimer(d.o.StartTimeout)
	defer timer.Stop()
	select {
	case u := <-urls:
		s.base = u
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("phivault serve exited (%v): %s", s.err, s.lastError())
	case <-timer.C:
		s.kill()
		return nil, fmt.Errorf("phivault serve printed no URL within %v", d.o.StartTimeout)
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
}

func withoutPassphrase(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PHIVAULT_PASSPHRASE=") && !strings.HasPrefix(kv, "PHIVAULT_PASSPHRASE_FILE=") {
			out = append(out, kv)
		}
	}
	return out
}

// urlWatcher reads a server's standard output for the line
// "phivault serving URL/fhir" and sends the FHIR base URL, once.
type urlWatcher struct {
	mu   sync.Mutex
	buf  []byte
	urls chan<- string
	sent bool
}

func (w *urlWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		line, rest, ok := bytes.Cut(w.buf, []byte("\n"))
		if !ok {
			break
		}
		w.buf = rest
		if u, ok := strings.CutPrefix(string(line), "phivault serving "); ok {
			w.urls <- strings.TrimSpace(u)
			w.sent, w.buf = true, nil
			break
		}
	}
	return len(p), nil
}

// lastError returns the error the server printed last.
func (s *server) lastError() string {
	b, _ := os.ReadFile(s.log)
	return lastLine(b)
}

func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// stop asks the server to stop (SIGINT, as Ctrl-C) and waits for it; it
// kills it after timeout.
func (s *server) stop(timeout time.Duration) error {
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		s.kill()
		return fmt.Errorf("signal the server: %w", err)
	}
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("the server did not stop within %v; killed", timeout)
	}
	if s.err != nil {
		return fmt.Errorf("the server exited with %v: %s", s.err, s.lastError())
	}
	return nil
}

// readSample reads up to n patients: a search for them, then each by its
// id. first is called after the first successful read. It returns how
// many patients were read.
func (s *server) readSample(ctx context.Context, n int, first func()) (int, error) {
	var bundle struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	body, err := s.get(ctx, "/Patient?_count="+fmt.Sprint(n))
	if err != nil {
		return 0, fmt.Errorf("search patients: %w", err)
	}
	first()
	if err := json.Unmarshal(body, &bundle); err != nil {
		return 0, errors.New("search patients: the answer is not a Bundle")
	}
	read := 0
	for _, e := range bundle.Entry {
		body, err := s.get(ctx, "/Patient/"+url.PathEscape(e.Resource.ID))
		if err != nil {
			return read, fmt.Errorf("read Patient/%s: %w", e.Resource.ID, err)
		}
		var p struct{ ResourceType, ID string }
		if json.Unmarshal(body, &p) != nil || p.ResourceType != "Patient" || p.ID != e.Resource.ID {
			return read, fmt.Errorf("read Patient/%s: the answer is not that patient", e.Resource.ID)
		}
		read++
	}
	return read, nil
}

// get reads path under the FHIR base with the scratch token and returns
// the body of a 200 answer.
func (s *server) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(bytes.ToLower(body), []byte("sealed")) {
			return nil, errors.New("the server is sealed: give the key-file passphrase (or the KMS/HSM settings)")
		}
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return body, nil
}
