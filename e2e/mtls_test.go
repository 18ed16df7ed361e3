package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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

// TestMutualTLS runs the binary with a client CA and a certificate map: a
// system client presenting its certificate is named in the audit trail, and
// a certificate from another CA cannot connect.
func TestMutualTLS(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	ca, caKey := newCA(t, "phivault e2e client CA")
	caFile := filepath.Join(dir, "clients-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600)
	lab := newClientCert(t, ca, caKey, "lab analyzer")
	mapFile := filepath.Join(dir, "clients.map")
	os.WriteFile(mapFile, []byte(server.Fingerprint(lab.Leaf)+" lab-analyzer\n"), 0o600)

	v := newVault(t, "PHIVAULT_TLS_CLIENT_CA="+caFile, "PHIVAULT_TLS_CLIENT_MAP="+mapFile)
	v.start()
	v.client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{lab}
	if r := v.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","active":true}`)); r.status != http.StatusCreated {
		t.Fatalf("create with a mapped client certificate: HTTP %d: %s", r.status, r.body)
	}
	r := v.do(http.MethodGet, "/AuditEvent?action=C", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "lab-analyzer") {
		t.Fatalf("the audit trail does not name the client: HTTP %d: %.500s", r.status, r.body)
	}

	other, otherKey := newCA(t, "someone else's CA")
	intruder := newClientCert(t, other, otherKey, "intruder")
	// Certificates would be withheld from a server that names other CAs;
	// send this one regardless.
	sendIntruder := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &intruder, nil }
	v.client = v.httpClient()
	v.client.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = sendIntruder
	if _, err := v.send(t.Context(), http.MethodGet, "/metadata", nil); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	// The refusal is the server's TLS alert about the certificate, not some
	// other failure to connect (HTTP/2 hides the alert, so ask TLS itself).
	u, err := url.Parse(v.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{
		RootCAs:              v.client.Transport.(*http.Transport).TLSClientConfig.RootCAs,
		GetClientCertificate: sendIntruder,
		NextProtos:           []string{"http/1.1"},
	})
	if err == nil {
		// In TLS 1.3 the server's verdict on the client arrives after the
		// client's side of the handshake: read it.
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS with a certificate from another CA: %v, want an alert about the certificate", err)
	}
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newClientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
