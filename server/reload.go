package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certSource serves the certificate of a CertFile/KeyFile pair through
// tls.Config.GetCertificate and swaps in a new pair when the files change.
// It is safe for concurrent use: handshakes read the current certificate
// through an atomic pointer, and a reload holds mu.
type certSource struct {
	certFile, keyFile string
	interval          time.Duration // <= 0: no polling
	now               func() time.Time
	logger            *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex
	checked time.Time // when the files were last looked at
	seen    [sha256.Size]byte
}

// getCertificate is tls.Config.GetCertificate. At most once per interval it
// looks at the files and reloads them if their contents changed.
func (c *certSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.interval > 0 {
		c.mu.Lock()
		if now := c.now(); now.Sub(c.checked) >= c.interval || now.Before(c.checked) {
			c.checked = now
			// A rejected pair is logged by reloadLocked; the handshake goes
			// on with the certificate in use.
			c.reloadLocked(false)
		}
		c.mu.Unlock()
	}
	return c.cert.Load(), nil
}

// reload loads the pair whether or not the files changed. It is also the
// first load, when there is no certificate to fall back to.
func (c *certSource) reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked = c.now()
	_, err := c.reloadLocked(true)
	return err
}

// reloadLocked reads both files and, if force is set or their contents
// differ from the last pair looked at, parses and checks them and swaps the
// certificate in. A pair that fails its checks is logged and leaves the
// certificate in use untouched; it is not tried again until the files change
// (or a forced reload), so a bad pair is logged once rather than on every
// poll. The caller holds c.mu.
func (c *certSource) reloadLocked(force bool) (changed bool, err error) {
	certPEM, err := os.ReadFile(c.certFile)
	if err == nil {
		var keyPEM []byte
		keyPEM, err = os.ReadFile(c.keyFile)
		if err == nil {
			// The digest covers both files so that a certificate written
			// before its key is tried again once the key arrives. The key
			// itself is not kept.
			h := sha256.New()
			h.Write(certPEM)
			h.Write([]byte{0})
			h.Write(keyPEM)
			var sum [sha256.Size]byte
			h.Sum(sum[:0])
			if !force && bytes.Equal(sum[:], c.seen[:]) {
				return false, nil
			}
			c.seen = sum
			err = c.swap(certPEM, keyPEM)
			clear(keyPEM)
		}
	}
	if err != nil {
		err = fmt.Errorf("server: load certificate: %w", err)
		if old := c.cert.Load(); old != nil {
			c.logger.Error("TLS certificate reload rejected; keeping the certificate in use",
				"error", err, "serial", old.Leaf.SerialNumber.Text(16))
		}
		return false, err
	}
	return true, nil
}

// swap parses and checks a pair and makes it the certificate in use.
func (c *certSource) swap(certPEM, keyPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM) // also checks that the key matches
	if err != nil {
		return err
	}
	if cert.Leaf == nil {
		return errors.New("no leaf certificate")
	}
	if now := c.now(); now.After(cert.Leaf.NotAfter) {
		return fmt.Errorf("certificate expired on %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	old := c.cert.Swap(&cert)
	if old != nil {
		c.logger.Info("TLS certificate reloaded",
			"serial", cert.Leaf.SerialNumber.Text(16),
			"old_serial", old.Leaf.SerialNumber.Text(16),
			"not_after", cert.Leaf.NotAfter.UTC())
	}
	return nil
}
