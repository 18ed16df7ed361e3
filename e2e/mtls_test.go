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
	v.client = v.httpClient()
	v.client.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c := newClientCert(t, other, otherKey, "intruder")
		return &c, nil
	}
	if _, err := v.send(t.Context(), http.MethodGet, "/metadata", nil); err == nil {
		t.Fatal("a certificate from another CA was accepted")
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
