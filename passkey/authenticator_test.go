package passkey_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// softAuthenticator is a WebAuthn authenticator in software: one ES256
// (ECDSA P-256) credential, "none" attestation, authenticator data laid out
// as in WebAuthn §6.1 and CBOR as in §6.5.
type softAuthenticator struct {
	key        *ecdsa.PrivateKey
	credID     []byte
	userHandle []byte
	counter    uint32
	rpID       string // the rpIdHash is computed over this
	origin     string // written into clientDataJSON
	uv         bool   // set the UV flag
	synced     bool   // set the BE and BS flags (a synced passkey)
	// fixedCounter keeps the counter at 0, as synced passkeys do.
	fixedCounter bool
}

func newSoftAuthenticator(t testing.TB, rpID, origin string) *softAuthenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &softAuthenticator{key: key, credID: id, rpID: rpID, origin: origin, uv: true}
}

// clone returns an authenticator holding the same key and counter.
func (a *softAuthenticator) clone() *softAuthenticator {
	c := *a
	return &c
}

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

func (a *softAuthenticator) authData(t testing.TB, attested []byte) []byte {
	t.Helper()
	rpHash := sha256.Sum256([]byte(a.rpID))
	flags := byte(flagUP)
	if a.uv {
		flags |= flagUV
	}
	if a.synced {
		flags |= flagBE | flagBS
	}
	if attested != nil {
		flags |= flagAT
	}
	d := append([]byte(nil), rpHash[:]...)
	d = append(d, flags)
	d = binary.BigEndian.AppendUint32(d, a.counter)
	return append(d, attested...)
}

func (a *softAuthenticator) clientData(t testing.TB, typ, challenge string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *softAuthenticator) cosePublicKey(t testing.TB) []byte {
	t.Helper()
	pub, err := a.key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	em, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:65]}) // kty EC2, alg ES256, crv P-256
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// creationOptions is the part of PublicKeyCredentialCreationOptions the
// authenticator uses.
type creationOptions struct {
	Challenge string `json:"challenge"`
	User      struct {
		ID string `json:"id"`
	} `json:"user"`
}

// create answers a registration with a "none" attestation, as the JSON
// form of a PublicKeyCredential.
func (a *softAuthenticator) create(t testing.TB, opts creationOptions) []byte {
	t.Helper()
	handle, err := base64.RawURLEncoding.DecodeString(opts.User.ID)
	if err != nil {
		t.Fatalf("user.id %q: %v", opts.User.ID, err)
	}
	a.userHandle = handle
	attested := make([]byte, 16) // AAGUID: zero for "none"
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.credID)))
	attested = append(attested, a.credID...)
	attested = append(attested, a.cosePublicKey(t)...)
	authData := a.authData(t, attested)
	attObj, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		t.Fatal(err)
	}
	cd := a.clientData(t, "webauthn.create", opts.Challenge)
	return a.credentialJSON(t, map[string]any{
		"clientDataJSON":    b64(cd),
		"attestationObject": b64(attObj),
		"transports":        []string{"internal"},
	})
}

// get answers a login challenge after incrementing the counter (unless
// it is fixed).
func (a *softAuthenticator) get(t testing.TB, challenge string) []byte {
	t.Helper()
	if !a.fixedCounter {
		a.counter++
	}
	authData := a.authData(t, nil)
	cd := a.clientData(t, "webauthn.get", challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return a.credentialJSON(t, map[string]any{
		"clientDataJSON":    b64(cd),
		"authenticatorData": b64(authData),
		"signature":         b64(sig),
		"userHandle":        b64(a.userHandle),
	})
}

func (a *softAuthenticator) credentialJSON(t testing.TB, response map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": b64(a.credID), "rawId": b64(a.credID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": response,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
