package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/phivault/phivault/fhir"
)

// Fingerprint returns the SHA-256 fingerprint of cert's DER encoding in
// lowercase hex, the form ClientCertMap keys take.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseClientCertMap reads a ClientCertMap from lines of the form
//
//	<key> <client-id>
//
// where key is a certificate's SHA-256 fingerprint (64 hex digits, colons
// allowed, as `openssl x509 -fingerprint -sha256` prints it) or a URI SAN
// such as spiffe://hospital.example/lab. Blank lines and lines starting with
// # are skipped. A key given twice is an error.
func ParseClientCertMap(r io.Reader) (map[string]string, error) {
	m := make(map[string]string)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("client certificate map line %d: want \"<fingerprint or URI> <client-id>\"", n)
		}
		key, _, err := clientKey(fields[0])
		if err != nil {
			return nil, fmt.Errorf("client certificate map line %d: %w", n, err)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("client certificate map line %d: %s is mapped twice", n, fields[0])
		}
		m[key] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("client certificate map: %w", err)
	}
	return m, nil
}

// clientKey normalizes a ClientCertMap key: a fingerprint becomes lowercase
// hex without colons; a URI is kept as it is.
func clientKey(k string) (key string, isURI bool, err error) {
	fp := strings.ToLower(strings.ReplaceAll(k, ":", ""))
	if b, err := hex.DecodeString(fp); err == nil && len(b) == sha256.Size {
		return fp, false, nil
	}
	if u, err := url.Parse(k); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "" || u.Path != "") {
		return k, true, nil
	}
	return "", false, fmt.Errorf("%q is neither a SHA-256 fingerprint (64 hex digits) nor a URI", k)
}

// clientAuth maps verified client certificates to client ids.
type clientAuth struct {
	pool   *x509.CertPool
	byFP   map[string]string // fingerprint -> client id
	byURI  map[string]string // URI SAN -> client id
	logger *slog.Logger
}

func newClientAuth(caFile string, m map[string]string, logger *slog.Logger) (*clientAuth, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("server: client CA: %w", err)
	}
	a := &clientAuth{
		pool:   x509.NewCertPool(),
		byFP:   make(map[string]string),
		byURI:  make(map[string]string),
		logger: logger,
	}
	if !a.pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("server: client CA: %s holds no PEM certificate", caFile)
	}
	for k, id := range m {
		key, isURI, err := clientKey(k)
		if err != nil {
			return nil, fmt.Errorf("server: client certificate map: %w", err)
		}
		if id == "" {
			return nil, fmt.Errorf("server: client certificate map: %s has an empty client id", k)
		}
		if isURI {
			a.byURI[key] = id
		} else {
			a.byFP[key] = id
		}
	}
	return a, nil
}

// client returns the client id that cert maps to. A fingerprint entry wins
// over URI SANs; URI SANs that map to different ids are ambiguous and map
// to none.
func (a *clientAuth) client(cert *x509.Certificate) (string, bool) {
	if id, ok := a.byFP[Fingerprint(cert)]; ok {
		return id, true
	}
	var found string
	for _, u := range cert.URIs {
		id, ok := a.byURI[u.String()]
		if !ok {
			continue
		}
		if found != "" && found != id {
			return "", false
		}
		found = id
	}
	return found, found != ""
}

// wrap puts the client id of a verified, mapped client certificate into the
// request context, refuses a verified certificate that maps to no client
// with 403, and passes requests without a certificate through unchanged
// (browsers and bearer-token clients).
//
// The client id is the certificate's identity only; authorization does not
// yet use it. The identity issue turns it into a principal that the policy
// layer checks like any other.
func (a *clientAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		// With tls.VerifyClientCertIfGiven a certificate that does not
		// verify against the client CAs fails the handshake, so a request
		// that got here with certificates has verified chains; check
		// anyway rather than trust that.
		if len(r.TLS.VerifiedChains) == 0 {
			forbidden(w)
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		id, ok := a.client(leaf)
		if !ok {
			// The fingerprint identifies the certificate, not a person; the
			// subject is not logged since it may name one.
			a.logger.Warn("client certificate not mapped to a client", "fingerprint", Fingerprint(leaf))
			forbidden(w)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientContextKey{}, id)))
	})
}

type clientContextKey struct{}

// ClientFromContext returns the client id of the request's verified client
// certificate, if it presented one that Config.ClientCertMap maps.
func ClientFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(clientContextKey{}).(string)
	return id, ok
}

// forbidden answers 403 with an OperationOutcome.
func forbidden(w http.ResponseWriter) {
	// Marshalling this fixed value cannot fail.
	body, _ := json.Marshal(fhir.NewOutcome("error", "forbidden",
		"The client certificate is not registered with this server."))
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	w.Write(body)
}
