package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dataDir is a phivault data folder. Its layout:
//
//	phivault.db              the SQLite database (ciphertext and tokens only)
//	phivault.audit.db        the audit trail (ids only); back it up with phivault.db
//	phivault.audit.journal/  audit entries not yet in phivault.audit.db, replayed at start
//	keyring.age              the KEKs, encrypted under the passphrase
//	tls/cert.pem             the TLS certificate (self-signed by init)
//	tls/key.pem              its private key (mode 0600)
//	admin-token.sha256       the SHA-256 of the bootstrap admin token, hex
//	scim-token.sha256        the SHA-256 of the SCIM provisioning token, if made
//	audit-signer.key         the audit checkpoint signing key (mode 0600)
//	audit-verifier.pub       its verifier key, for outside parties
//	audit-checkpoints.log    the file witness: every signed checkpoint
//	install-id               random id of this vault, shown in the CapabilityStatement
//	signin.key               the key sealing sign-in steps in browsers (mode 0600); shared by the nodes of one vault
//	store                    "sqlite" or "postgres": where the records are (see store.go)
//	audit-witness-file       the path of the witness file outside the folder, named to init
//	demo-passphrase, demo-accounts.json   "phivault demo" only: its secrets, for demos
type dataDir string

func (d dataDir) path(name string) string { return filepath.Join(string(d), name) }
func (d dataDir) database() string        { return d.path("phivault.db") }
func (d dataDir) keyFile() string         { return d.path("keyring.age") }
func (d dataDir) certFile() string        { return d.path(filepath.Join("tls", "cert.pem")) }
func (d dataDir) certKeyFile() string     { return d.path(filepath.Join("tls", "key.pem")) }
func (d dataDir) tokenHashFile() string   { return d.path("admin-token.sha256") }

// initialized reports whether init has run in d. (A vault whose keys live
// in a KMS or an HSM has no key file, so the admin token hash is the mark.)
func (d dataDir) initialized() bool {
	_, err := os.Stat(d.tokenHashFile())
	return err == nil
}

// tokenHash reads the admin token hash.
func (d dataDir) tokenHash() ([]byte, error) {
	b, err := os.ReadFile(d.tokenHashFile())
	if err != nil {
		return nil, fmt.Errorf("read admin token hash: %w", err)
	}
	h, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(h) != 32 {
		return nil, errors.New("admin-token.sha256 is corrupt; run init in a new folder or restore it from backup")
	}
	return h, nil
}

// writeFileAtomic writes data to path with mode perm: temp file in the same
// folder, fsync, rename, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// passphrase returns the key-file passphrase from -passphrase-file, or
// PHIVAULT_PASSPHRASE, or PHIVAULT_PASSPHRASE_FILE; "" if none is set.
func passphrase(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read -passphrase-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return secretFromEnv("PHIVAULT_PASSPHRASE")
}

// randomPassphrase returns a passphrase with 192 bits of entropy.
func randomPassphrase() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// installID returns the data folder's install id, making it on first use
// (init makes it; folders from before it get one at their next start). It
// is random, shown in the CapabilityStatement, and lets clients such as
// "phivault import" tell this vault from a fresh one at the same URL.
func (d dataDir) installID() (string, error) {
	path := d.path("install-id")
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); len(id) == 32 {
			return id, nil
		}
		return "", errors.New("install-id is corrupt; restore it from backup")
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read install id: %w", err)
	}
	var r [16]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	if err := writeFileAtomic(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write install id: %w", err)
	}
	return id, nil
}
