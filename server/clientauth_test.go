package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/server"
)

// testCA issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func randomSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a client certificate signed by ca, with the given URI SANs.
func (ca *testCA) issue(t *testing.T, name string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientCertificates(t *testing.T) {
	ca := newTestCA(t, "hospital client CA")
	other := newTestCA(t, "someone else's CA")
	lab := ca.issue(t, "lab system")
	pharmacy := ca.issue(t, "pharmacy system", "spiffe://hospital.example/pharmacy")
	unmapped := ca.issue(t, "unregistered system", "spiffe://hospital.example/unregistered")
	foreign := other.issue(t, "foreign system", "spiffe://hospital.example/pharmacy")

	certPEM, keyPEM, err := server.SelfSigned(nil, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	logs := &logBuffer{}
	s := server.New(server.Config{
		Addr:         "127.0.0.1:0",
		Certificate:  &serverCert,
		ClientCAFile: writeFile(t, "client-ca.pem", ca.pem),
		ClientCertMap: map[string]string{
			// Upper case with colons, as openssl prints it.
			strings.ToUpper(colons(server.Fingerprint(lab.Leaf))): "lab",
			"spiffe://hospital.example/pharmacy":                  "pharmacy",
		},
		FHIR: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := server.ClientFromContext(r.Context())
			if !ok {
				id = "(none)"
			}
			w.Write([]byte("client " + id))
		}),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	get := func(t *testing.T, cert *tls.Certificate) (*http.Response, string, error) {
		t.Helper()
		cfg := &tls.Config{RootCAs: roots}
		if cert != nil {
			// Send the certificate even if its issuer is not among the
			// CAs the server names (Go's client would otherwise send none).
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(s.URL() + "/fhir/Patient")
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}

	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		want string
	}{
		{"NoCertificate", nil, "client (none)"},
		{"ByFingerprint", &lab, "client lab"},
		{"ByURI", &pharmacy, "client pharmacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := get(t, tc.cert)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || body != tc.want {
				t.Errorf("status %d, body %q; want 200, %q", resp.StatusCode, body, tc.want)
			}
		})
	}

	t.Run("Unmapped", func(t *testing.T) {
		resp, body, err := get(t, &unmapped)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
			t.Errorf("Content-Type %q, want application/fhir+json", ct)
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("403 lacks the security headers")
		}
		var oo struct {
			ResourceType string
			Issue        []struct{ Severity, Code string }
		}
		if err := json.Unmarshal([]byte(body), &oo); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != "forbidden" {
			t.Errorf("body %s, want an OperationOutcome with one forbidden issue", body)
		}
		if fp := server.Fingerprint(unmapped.Leaf); !strings.Contains(logs.String(), fp) {
			t.Errorf("log does not name the unmapped fingerprint %s:\n%s", fp, logs)
		} else if strings.Contains(logs.String(), "unregistered system") {
			t.Errorf("log names the certificate's subject:\n%s", logs)
		}
	})

	t.Run("OtherCA", func(t *testing.T) {
		// A URI SAN that is mapped does not help a certificate the client
		// CA did not issue: the handshake fails.
		resp, body, err := get(t, &foreign)
		// The same client without a certificate succeeds (NoCertificate),
		// so the certificate is what failed it. The error text varies: in
		// TLS 1.3 the client may see the connection close before the alert.
		if err == nil {
			t.Fatalf("a certificate from another CA got status %d, body %q; want a failed handshake", resp.StatusCode, body)
		}
	})
}

// colons writes a hex fingerprint as pairs separated by colons.
func colons(hex string) string {
	var b strings.Builder
	for i := 0; i < len(hex); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(hex[i : i+2])
	}
	return b.String()
}

func TestClientCertificates_Config(t *testing.T) {
	ca := newTestCA(t, "hospital client CA")
	caFile := writeFile(t, "ca.pem", ca.pem)
	certPEM, keyPEM, err := server.SelfSigned(nil, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  server.Config
	}{
		{"MapWithoutCA", server.Config{Certificate: &cert, ClientCertMap: map[string]string{"spiffe://a/b": "b"}}},
		{"CAFileWithoutCertificates", server.Config{Certificate: &cert, ClientCAFile: writeFile(t, "empty.pem", []byte("nothing here\n"))}},
		{"MissingCAFile", server.Config{Certificate: &cert, ClientCAFile: filepath.Join(t.TempDir(), "absent.pem")}},
		{"BadKey", server.Config{Certificate: &cert, ClientCAFile: caFile, ClientCertMap: map[string]string{"abc123": "x"}}},
		{"EmptyClientID", server.Config{Certificate: &cert, ClientCAFile: caFile, ClientCertMap: map[string]string{"spiffe://a/b": ""}}},
		{"Insecure", server.Config{Insecure: true, ClientCAFile: caFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Addr = "127.0.0.1:0"
			s := server.New(tc.cfg)
			if err := s.Open(context.Background()); err == nil {
				s.Close()
				t.Error("Open succeeded, want a configuration error")
			}
		})
	}
}

func TestParseClientCertMap(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	m, err := server.ParseClientCertMap(strings.NewReader(`# system clients
` + strings.ToUpper(colons(fp)) + `   lab

spiffe://hospital.example/pharmacy	pharmacy
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[fp] != "lab" || m["spiffe://hospital.example/pharmacy"] != "pharmacy" {
		t.Errorf("map = %v", m)
	}

	for _, bad := range []string{
		"onlyonefield\n",
		fp + " lab extra\n",
		"abc123 lab\n",
		"not-a-uri lab\n",
		fp + " lab\n" + colons(fp) + " lab2\n",
	} {
		if m, err := server.ParseClientCertMap(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseClientCertMap(%q) = %v, want an error", bad, m)
		}
	}
}
