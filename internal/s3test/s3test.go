// Package s3test starts a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, Apache-2.0) with its posix backend in a
// temporary folder, bucket versioning on, listening on loopback only.
//
// The server is found on PATH or in $(go env GOPATH)/bin; .ci/setup-s3.sh
// installs it. When it is missing, [Start] skips the test only if
// PHIVAULT_E2E is unset, and fails it when PHIVAULT_E2E is set (CI).
package s3test

import (
	"bytes"
	"fmt"
	"github.com/phivault/phivault/internal/testenv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Module is the versitygw version the tests run against. Keep in step with
// .ci/setup-s3.sh.
const Module = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// The root credential of a started server. It is the gateway's admin: it
// may do anything the S3 API allows, which is what the attacker tests use.
const (
	RootAccessKey = "phivault-root"
	RootSecretKey = "phivault-root-secret-for-tests"
	Region        = "us-east-1"
)

// Server is a versitygw process started by a test.
type Server struct {
	// Endpoint is host:port on 127.0.0.1, plain http.
	Endpoint string
	// Root is the posix backend's folder (one sub-folder per bucket).
	Root string
	cmd  *exec.Cmd
	log  *lockedWriter
	stop sync.Once
	done chan struct{}
}

// Path returns the versitygw binary's path, or "" if it is neither on PATH
// nor in GOBIN or GOPATH/bin.
func Path() string { return testenv.GoInstalled("versitygw") }

// Start starts versitygw for the test and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := Path()
	if bin == "" {
		msg := "versitygw not found on PATH or in $(go env GOPATH)/bin: run .ci/setup-s3.sh (go install " + Module + ")"
		if os.Getenv("PHIVAULT_E2E") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	var lastErr error
	for range 3 { // the free port may be taken before versitygw binds it
		s, err := start(tb, bin)
		if err == nil {
			return s
		}
		lastErr = err
	}
	tb.Fatal(lastErr)
	return nil
}

func start(tb testing.TB, bin string) (*Server, error) {
	dir := tb.TempDir()
	root, versions := filepath.Join(dir, "root"), filepath.Join(dir, "versions")
	for _, d := range []string{root, versions} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--port", addr, // loopback only
		"--access", RootAccessKey, "--secret", RootSecretKey,
		"--region", Region, "--quiet",
		"posix", "--versioning-dir", versions, root)
	cmd.Dir = dir
	// Only what it needs: no credentials or settings from the environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	s := &Server{Endpoint: addr, Root: root, cmd: cmd, log: &lockedWriter{w: new(bytes.Buffer)}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("versitygw exited before listening on %s: %s", addr, s.Log())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s within 30s: %s", addr, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Cleanup(s.Stop)
	return s, nil
}

// Stop kills the server and waits for it to exit. It may be called more
// than once.
func (s *Server) Stop() {
	s.stop.Do(func() { s.cmd.Process.Kill() })
	<-s.done
}

// Log returns what the server printed so far.
func (s *Server) Log() string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.w.String()
}

// freePort returns a TCP port on loopback that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
