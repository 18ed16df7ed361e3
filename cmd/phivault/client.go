package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// clientFlags are the flags of subcommands that talk to a running server.
type clientFlags struct {
	url    string
	cacert string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", envOr("PHIVAULT_URL", "https://localhost:8443/fhir"), "FHIR base URL of the server (env PHIVAULT_URL)")
	fs.StringVar(&c.cacert, "cacert", os.Getenv("PHIVAULT_CACERT"), "PEM file of the CA (or self-signed certificate) to trust (env PHIVAULT_CACERT)")
}

// client returns an HTTP client for the server and the bearer token, read
// from PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE (never from a flag, which would
// show in the process list).
func (c *clientFlags) client(conns int) (*apiClient, error) {
	token, err := secretFromEnv("PHIVAULT_TOKEN")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errorWithHint("no API token", "set PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE to the token that init or demo printed")
	}
	hc, err := c.httpClient(conns)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: strings.TrimSuffix(c.url, "/"), token: token, http: hc}, nil
}

// httpClient returns an HTTP client for the server, trusting -cacert, with
// at most conns connections.
func (c *clientFlags) httpClient(conns int) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, fmt.Errorf("read -cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cacert %s holds no PEM certificate", c.cacert)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsConf,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false, // one TCP connection per worker measures like real clients
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}, nil
}

// apiClient sends FHIR requests with a bearer token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// do sends one request and returns the status and body. A non-2xx status is
// not an error here; callers decide.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// outcomeMessage extracts the diagnostics of an OperationOutcome body.
func outcomeMessage(body []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 {
		return "no OperationOutcome"
	}
	var parts []string
	for _, is := range oo.Issue {
		s := is.Diagnostics
		if len(is.Expression) > 0 {
			s += " (" + strings.Join(is.Expression, ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
