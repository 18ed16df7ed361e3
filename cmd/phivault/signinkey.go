package main

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/phivault/phivault/internal/sealbox"
)

// signInKeySize is the size of a new sign-in key, and the least a key
// file must hold, in bytes.
const signInKeySize = 32

// Labels of the keys derived from the sign-in key (HKDF info): each seals
// one kind of sign-in state, so that none opens under another's key.
const (
	labelPending  = "phivault sign-in key v1: oauth pending authorization"
	labelCeremony = "phivault sign-in key v1: passkey ceremony"
	labelFlow     = "phivault sign-in key v1: federation flow"
)

// signInKeyFile is where the sign-in key lives unless -signin-key-file
// names another file.
func (d dataDir) signInKeyFile() string { return d.path("signin.key") }

// signInKeys seal the sign-in state that browsers carry between the steps
// of a sign-in: the OAuth server's pending authorizations
// (oauth.Options.PendingKey), passkey ceremonies
// (passkey.Options.CeremonyKey) and federated flows
// (federation.Options.FlowKey). Each is derived from the sign-in key file
// with HKDF-SHA256 under its own label, so nodes that share the file open
// each other's state, and a restart does not end sign-ins in progress.
type signInKeys struct {
	pending, ceremony, flow []byte
}

// LogValue never shows the keys.
func (signInKeys) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// loadSignInKeys reads the sign-in key from path and derives the keys. If
// path is "" it reads the data folder's signin.key, making it first if it
// is absent (folders from before it); a file named by -signin-key-file
// is never made, since every node must read the same one.
func loadSignInKeys(d dataDir, path string) (signInKeys, error) {
	if path == "" {
		path = d.signInKeyFile()
		if err := createSignInKey(path); err != nil {
			return signInKeys{}, err
		}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return signInKeys{}, errorWithHint(fmt.Sprintf("sign-in key file %s does not exist", path),
			"copy "+d.signInKeyFile()+" from the first node, or make one with: umask 077; openssl rand -hex 32 > "+path)
	} else if err != nil {
		return signInKeys{}, fmt.Errorf("read sign-in key: %w", err)
	}
	defer clear(b)
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	defer clear(secret) // only the derived keys stay in memory
	if err != nil || len(secret) < signInKeySize {
		return signInKeys{}, errorWithHint(fmt.Sprintf("sign-in key file %s must hold at least %d random bytes in hex", path, signInKeySize),
			"umask 077; openssl rand -hex 32 > "+path)
	}
	var k signInKeys
	for _, dk := range []struct {
		key   *[]byte
		label string
	}{{&k.pending, labelPending}, {&k.ceremony, labelCeremony}, {&k.flow, labelFlow}} {
		if *dk.key, err = hkdf.Key(sha256.New, secret, nil, dk.label, sealbox.KeySize); err != nil {
			return signInKeys{}, fmt.Errorf("derive sign-in key: %w", err)
		}
	}
	return k, nil
}

// createSignInKey writes a new random sign-in key to path (mode 0600) if
// there is no file there.
func createSignInKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sign-in key: %w", err)
	}
	secret := make([]byte, signInKeySize)
	rand.Read(secret)
	defer clear(secret)
	if err := writeFileAtomic(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write sign-in key: %w", err)
	}
	return nil
}
