package perf_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A loadClient is the load generator in a child process: this test binary
// run again as TestLoadClientProcess. A server's scheduler then holds only
// the server's goroutines, as in a deployment, instead of sharing its run
// queues with 64 client goroutines; the two processes still share the
// machine's cores. The child keeps its connections open between runs.
type loadClient struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Scanner
}

// loadClientEnv names the child's settings.
const (
	loadClientEnv = "PHIVAULT_PERF_LOAD_CLIENT" // JSON loadClientConfig
)

type loadClientConfig struct {
	Base   string   `json:"base"`
	Token  string   `json:"token"`
	CAFile string   `json:"ca_file"`
	Paths  []string `json:"paths"`
	Conns  int      `json:"conns"`
}

// loadResult is one run's outcome, as the child reports it.
type loadResult struct {
	Requests int           `json:"requests"`
	Elapsed  time.Duration `json:"elapsed"`
	Durs     []int64       `json:"durs"` // nanoseconds per request
	Err      string        `json:"error,omitempty"`
}

// startLoadClient starts a child process sending GET paths to s over up to
// conns connections, and stops it at cleanup.
func startLoadClient(tb testing.TB, s *stack, paths []string, conns int) *loadClient {
	tb.Helper()
	ca := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.caPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := json.Marshal(loadClientConfig{Base: s.base, Token: s.token, CAFile: ca, Paths: paths, Conns: conns})
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), loadClientEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &loadClient{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	c.out.Buffer(nil, 64<<20)
	tb.Cleanup(func() {
		stdin.Close() // the child exits at end of input
		if err := cmd.Wait(); err != nil {
			tb.Errorf("load client: %v", err)
		}
	})
	return c
}

// run has the child send total requests and returns the load it measured.
func (c *loadClient) run(tb testing.TB, total int) load {
	tb.Helper()
	fmt.Fprintln(c.in, total)
	if err := c.in.Flush(); err != nil {
		tb.Fatal(err)
	}
	var res loadResult
	for c.out.Scan() {
		// The child's test framework may print its own lines; results are
		// the JSON ones.
		if line := c.out.Bytes(); len(line) > 0 && line[0] == '{' {
			if err := json.Unmarshal(line, &res); err != nil {
				tb.Fatal(err)
			}
			break
		}
	}
	if res.Err != "" || res.Requests != total {
		tb.Fatalf("load client: %d of %d requests: %s %v", res.Requests, total, res.Err, c.out.Err())
	}
	l := load{elapsed: res.Elapsed}
	for _, d := range res.Durs {
		l.durs = append(l.durs, time.Duration(d))
	}
	return l
}

// TestLoadClientProcess is the child of startLoadClient; run directly, it
// does nothing. It reads request counts from stdin, one per line, sends
// that many reads and writes one loadResult line to stdout per run.
func TestLoadClientProcess(t *testing.T) {
	raw := os.Getenv(loadClientEnv)
	if raw == "" {
		return // not a child: nothing to check
	}
	var cfg loadClientConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{base: cfg.Base, token: cfg.Token, client: newBenchClient(t, pem, cfg.Conns)}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		total, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil {
			t.Fatal(err)
		}
		res := loadResult{}
		l, err := s.tryHammer(context.Background(), cfg.Paths, total, cfg.Conns)
		if err != nil {
			res.Err = err.Error()
		}
		res.Requests, res.Elapsed = len(l.durs), l.elapsed
		for _, d := range l.durs {
			res.Durs = append(res.Durs, int64(d))
		}
		if err := out.Encode(res); err != nil {
			t.Fatal(err)
		}
	}
}

// newBenchClient returns an HTTP/1.1 client trusting caPEM, with up to conns
// keep-alive connections.
func newBenchClient(tb testing.TB, caPEM []byte, conns int) *http.Client {
	tb.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		tb.Fatal("bad self-signed certificate")
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Protocols:           protos,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
