// Package keyring provides key-encryption-key (KEK) custody for phivault.
// Three keyrings implement phivault.Keyring, and none ever reveals a KEK:
//
//   - [FileKeyring], the default, keeps its KEKs in a local key file
//     encrypted under a passphrase.
//   - [KMS] asks a key management service speaking the AWS KMS API to
//     encrypt and decrypt data-encryption keys; the KEK never leaves it.
//   - [PKCS11] uses a non-extractable AES key in a PKCS#11 hardware
//     security module (tested against SoftHSM2).
//
// All three bind every wrapped DEK to its name (the DEK's id in the store)
// as additional data (AES-GCM) or encryption context (KMS), fail with
// [ErrUnwrap] when a wrapped key was altered or is unwrapped under another
// name, and with [ErrUnknownKEK] when it names a KEK they do not hold.
//
// # Unbound wraps
//
// Wraps made before binding (format 1, unwrapped with name "") unwrap only
// under a KEK that still accepts them. Each keyring records per KEK, in
// itself and never in the store, that it refuses them: the key file marks
// the KEK version ("unbound_refused"), the PKCS#11 keyring the KEK's CKA_ID,
// the KMS keyring a tag on the KMS key ([UnboundTag]). KEKs that the file
// and PKCS#11 keyrings make refuse them from the start; older ones accept
// them until RefuseUnbound, which the server calls once it has rebound the
// stored keys (envelope.EndUnbound). A refused unbound wrap fails with
// [ErrUnwrap].
//
// # Key file
//
// The key file is an ASCII-armored [age] file encrypted to an scrypt
// passphrase recipient (work factor 2^[DefaultWorkFactor] by default). Its
// plaintext is a small versioned JSON document listing the KEK versions
// ("file:1", "file:2", …), each 32 random bytes, and which one is current.
// The file is written atomically with mode 0600; [CreateFile] never
// overwrites one, and [RotateFile] replaces it with one more KEK version.
//
// Losing the key file or its passphrase loses every record sealed under it:
// back up both, separately.
//
// [age]: https://age-encryption.org/v1
package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/phivault/phivault"
)

// Defaults and limits of the file keyring.
const (
	// DefaultWorkFactor is the scrypt work factor (log2 N) used to protect a
	// new key file: 2^18 iterations, about one second and 256 MiB of memory.
	DefaultWorkFactor = 18
	// MaxWorkFactor is the largest work factor OpenFile accepts, so that a
	// crafted key file cannot make opening it take unbounded time.
	MaxWorkFactor = 22
	// MinPassphraseLen is the shortest passphrase CreateFile accepts, in bytes.
	MinPassphraseLen = 12
	// KEKSize is the size of a key-encryption key in bytes (AES-256).
	KEKSize = 32

	fileFormat      = "phivault-keyring"
	fileVersion     = 1
	maxFileSize     = 1 << 20
	firstKEKID      = phivault.KeyID("file:1")
	kekIDPrefix     = "file:"
	wrapNonceSize   = 12
	tempFilePattern = ".phivault-keys-*"
)

// Errors returned by the file keyring.
var (
	// ErrWrongPassphrase is returned by OpenFile when the passphrase does not
	// open the key file. (A key file whose passphrase block was altered
	// cannot be told apart from a wrong passphrase.)
	ErrWrongPassphrase = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Wrong passphrase for the key file."}
	// ErrShortPassphrase is returned by CreateFile for a passphrase shorter
	// than MinPassphraseLen bytes.
	ErrShortPassphrase = &phivault.Error{Code: phivault.EINVALID, Message: fmt.Sprintf("The passphrase must be at least %d bytes long.", MinPassphraseLen)}
	// ErrExist is returned by CreateFile when the key file already exists.
	ErrExist = &phivault.Error{Code: phivault.ECONFLICT, Message: "The key file already exists; it was not overwritten."}
	// ErrUnknownKEK is returned by UnwrapKey for a KEK id the keyring does
	// not hold.
	ErrUnknownKEK = errors.New("keyring: unknown key-encryption key")
	// ErrUnwrap is returned by UnwrapKey when the wrapped key fails
	// authentication: it was altered, wrapped under another KEK, or bound
	// to another key's name (moved to another row). Its code is
	// phivault.EINTEGRITY, like any stored data that fails its check.
	ErrUnwrap = &phivault.Error{Code: phivault.EINTEGRITY, Message: "A stored wrapped key failed its integrity check."}
)

// FileOptions configures CreateFile and OpenFile. The zero value is valid.
type FileOptions struct {
	// WorkFactor is the scrypt work factor (log2 N) that CreateFile uses.
	// Zero means DefaultWorkFactor. Tests use a low value to run fast.
	// OpenFile accepts files up to max(WorkFactor, MaxWorkFactor).
	WorkFactor int
	// Rand is the source of KEKs and wrapping nonces. Nil means
	// crypto/rand.Reader.
	Rand io.Reader
	// Now returns the current time for KEK creation stamps. Nil means
	// time.Now.
	Now func() time.Time
}

func (o FileOptions) withDefaults() FileOptions {
	if o.WorkFactor == 0 {
		o.WorkFactor = DefaultWorkFactor
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// keyFile is the plaintext of a key file.
type keyFile struct {
	Format  string         `json:"format"`
	Version int            `json:"version"`
	Current phivault.KeyID `json:"current"`
	KEKs    []fileKEK      `json:"keks"`
	// Retired records the versions removed from KEKs, without their keys,
	// for breach analysis (see RetireFile); absent if none.
	Retired []retiredKEK `json:"retired,omitempty"`
}

// retiredKEK is what the key file keeps of a retired KEK version: when it
// existed and whether it was marked compromised, never its key.
type retiredKEK struct {
	ID          phivault.KeyID `json:"id"`
	Created     time.Time      `json:"created"`
	Retired     time.Time      `json:"retired"`
	Compromised *time.Time     `json:"compromised,omitempty"`
}

type fileKEK struct {
	ID      phivault.KeyID `json:"id"`
	Key     []byte         `json:"key"`
	Created time.Time      `json:"created"`
	// Compromised is when an operator marked the version compromised
	// (see MarkCompromisedFile); absent if never.
	Compromised *time.Time `json:"compromised,omitempty"`
	// UnboundRefused is when the version stopped unwrapping unbound
	// (format-1) wraps: its creation for versions made since, the end of
	// the rebind for older ones (see RefuseUnboundFile). Absent means it
	// still accepts them, as every version in a key file written before
	// this field existed does.
	UnboundRefused *time.Time `json:"unbound_refused,omitempty"`
}

// FileKeyring is a phivault.Keyring whose KEKs come from a passphrase-
// protected key file. It wraps DEKs with AES-256-GCM under the current KEK
// and unwraps under any KEK version in the file.
//
// A FileKeyring never reveals its KEKs: String, GoString and LogValue show
// key ids only. It is safe for concurrent use by multiple goroutines.
type FileKeyring struct {
	keks    map[phivault.KeyID]*kek
	current *kek
	rand    io.Reader
	retired []KEKInfo // history only: these versions' keys are gone
}

// kek is one KEK version with its AEAD, built once.
type kek struct {
	id      phivault.KeyID
	key     []byte // kept only to export in tests; never formatted
	aead    cipher.AEAD
	created time.Time
	// compromised is when the version was marked compromised, or zero.
	compromised time.Time
	// unboundRefused is when the version stopped unwrapping unbound
	// wraps, or zero while it accepts them.
	unboundRefused time.Time
}

var _ phivault.Keyring = (*FileKeyring)(nil)

// CreateFile creates a new key file at path holding one fresh KEK
// ("file:1"), encrypted under passphrase. It refuses to overwrite an existing
// file (ErrExist) and rejects passphrases shorter than MinPassphraseLen
// (ErrShortPassphrase).
func CreateFile(path string, passphrase []byte, opts FileOptions) error {
	opts = opts.withDefaults()
	if len(passphrase) < MinPassphraseLen {
		return ErrShortPassphrase
	}
	if _, err := os.Lstat(path); err == nil {
		return ErrExist
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: create key file: %w", err)
	}
	key := make([]byte, KEKSize)
	if _, err := io.ReadFull(opts.Rand, key); err != nil {
		return fmt.Errorf("keyring: generate kek: %w", err)
	}
	kf := &keyFile{
		Format:  fileFormat,
		Version: fileVersion,
		Current: firstKEKID,
		KEKs:    []fileKEK{newFileKEK(firstKEKID, key, opts.Now())},
	}
	defer clear(key)
	data, err := seal(kf, passphrase, opts.WorkFactor)
	if err != nil {
		return err
	}
	return writeFile(path, data, false)
}

// RotateFile adds a fresh KEK version to the key file at path and makes it
// current, so that keys wrapped from then on use it. Older versions stay in
// the file and keep unwrapping what they wrapped. The file is replaced
// atomically, under the same passphrase and opts.WorkFactor. A running
// FileKeyring does not see the new version until the file is opened again.
// It returns the new KEK's id.
func RotateFile(path string, passphrase []byte, opts FileOptions) (phivault.KeyID, error) {
	opts = opts.withDefaults()
	kf, err := readFile(path, passphrase, max(opts.WorkFactor, MaxWorkFactor))
	if err != nil {
		return "", err
	}
	defer func() {
		for _, k := range kf.KEKs {
			clear(k.Key)
		}
	}()
	if _, err := newFileKeyring(kf, opts.Rand); err != nil {
		return "", err // refuse to rewrite a malformed file
	}
	next := 0
	ids := make([]phivault.KeyID, 0, len(kf.KEKs)+len(kf.Retired))
	for _, k := range kf.KEKs {
		ids = append(ids, k.ID)
	}
	for _, r := range kf.Retired {
		ids = append(ids, r.ID) // never reuse a retired version's id
	}
	for _, id := range ids {
		n, err := strconv.Atoi(strings.TrimPrefix(string(id), kekIDPrefix))
		if err == nil && n > next {
			next = n
		}
	}
	id := phivault.KeyID(kekIDPrefix + strconv.Itoa(next+1))
	key := make([]byte, KEKSize)
	if _, err := io.ReadFull(opts.Rand, key); err != nil {
		return "", fmt.Errorf("keyring: generate kek: %w", err)
	}
	kf.KEKs = append(kf.KEKs, newFileKEK(id, key, opts.Now()))
	kf.Current = id
	data, err := seal(kf, passphrase, opts.WorkFactor)
	if err != nil {
		return "", err
	}
	if err := writeFile(path, data, true); err != nil {
		return "", err
	}
	return id, nil
}

// newFileKEK returns a new KEK version created at now. It refuses unbound
// wraps from the start: it never made one, so any that names it was forged
// or moved.
func newFileKEK(id phivault.KeyID, key []byte, now time.Time) fileKEK {
	now = now.UTC()
	return fileKEK{ID: id, Key: key, Created: now, UnboundRefused: &now}
}

// OpenFile decrypts the key file at path with passphrase and returns its
// keyring. It returns ErrWrongPassphrase if the passphrase is wrong, and
// another error if the file is missing, altered or malformed.
func OpenFile(path string, passphrase []byte, opts FileOptions) (*FileKeyring, error) {
	opts = opts.withDefaults()
	kf, err := readFile(path, passphrase, max(opts.WorkFactor, MaxWorkFactor))
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, k := range kf.KEKs {
			clear(k.Key)
		}
	}()
	return newFileKeyring(kf, opts.Rand)
}

func newFileKeyring(kf *keyFile, rand io.Reader) (*FileKeyring, error) {
	k := &FileKeyring{keks: make(map[phivault.KeyID]*kek, len(kf.KEKs)), rand: rand}
	for _, fk := range kf.KEKs {
		if !strings.HasPrefix(string(fk.ID), kekIDPrefix) || len(fk.Key) != KEKSize {
			return nil, errors.New("keyring: key file malformed: bad kek entry")
		}
		if _, dup := k.keks[fk.ID]; dup {
			return nil, errors.New("keyring: key file malformed: duplicate kek id")
		}
		block, err := aes.NewCipher(fk.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring: kek %s: %w", fk.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: kek %s: %w", fk.ID, err)
		}
		k.keks[fk.ID] = &kek{id: fk.ID, key: bytes.Clone(fk.Key), aead: aead, created: fk.Created}
		if fk.Compromised != nil {
			k.keks[fk.ID].compromised = fk.Compromised.UTC()
		}
		if fk.UnboundRefused != nil {
			k.keks[fk.ID].unboundRefused = fk.UnboundRefused.UTC()
		}
	}
	for _, r := range kf.Retired {
		if _, dup := k.keks[r.ID]; dup || !strings.HasPrefix(string(r.ID), kekIDPrefix) {
			return nil, errors.New("keyring: key file malformed: bad retired kek entry")
		}
		info := KEKInfo{ID: r.ID, Created: r.Created.UTC(), Retired: r.Retired.UTC()}
		if r.Compromised != nil {
			info.Compromised = r.Compromised.UTC()
		}
		k.retired = append(k.retired, info)
	}
	k.current = k.keks[kf.Current]
	if k.current == nil {
		return nil, errors.New("keyring: key file malformed: no current kek")
	}
	return k, nil
}

// WrapKey wraps dek under the current KEK with AES-256-GCM and a random
// 96-bit nonce. The additional data binds the purpose "phivault dek v2",
// the KEK id and name (see wrapAD). The result is nonce ‖ ciphertext ‖ tag.
func (k *FileKeyring) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	if name == "" {
		return "", nil, errNoName
	}
	c := k.current
	out := make([]byte, wrapNonceSize, wrapNonceSize+len(dek)+c.aead.Overhead())
	if _, err := io.ReadFull(k.rand, out); err != nil {
		return "", nil, fmt.Errorf("keyring: wrap: nonce: %w", err)
	}
	return c.id, c.aead.Seal(out, out, dek, wrapAD(c.id, name)), nil
}

// UnwrapKey unwraps a DEK wrapped by WrapKey under KEK id and bound to name,
// or with name "" an unbound wrap of an earlier version if KEK id still
// accepts those (see AcceptsUnbound). It returns ErrUnknownKEK if the
// keyring does not hold id and ErrUnwrap if wrapped was altered, was
// wrapped under another KEK or bound to another name, or is unbound and id
// refuses unbound wraps; never a wrong key.
func (k *FileKeyring) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	c := k.keks[id]
	if c == nil {
		return nil, ErrUnknownKEK
	}
	if name == "" && !c.unboundRefused.IsZero() {
		return nil, unboundRefused(id)
	}
	if len(wrapped) < wrapNonceSize+c.aead.Overhead() {
		return nil, ErrUnwrap
	}
	dek, err := c.aead.Open(nil, wrapped[:wrapNonceSize], wrapped[wrapNonceSize:], wrapAD(id, name))
	if err != nil {
		return nil, ErrUnwrap
	}
	return dek, nil
}

// Current returns the id of the KEK that WrapKey uses.
func (k *FileKeyring) Current() phivault.KeyID { return k.current.id }

// IDs returns the ids of every KEK version the keyring holds, sorted.
func (k *FileKeyring) IDs() []phivault.KeyID {
	ids := make([]phivault.KeyID, 0, len(k.keks))
	for id := range k.keks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// String describes the keyring by its key ids only.
func (k *FileKeyring) String() string {
	ids := make([]string, 0, len(k.keks))
	for _, id := range k.IDs() {
		ids = append(ids, string(id))
	}
	return fmt.Sprintf("FileKeyring{current: %s, keks: [%s]}", k.current.id, strings.Join(ids, " "))
}

// GoString is String, so that %#v cannot print key bytes.
func (k *FileKeyring) GoString() string { return k.String() }

// LogValue logs key ids only.
func (k *FileKeyring) LogValue() slog.Value {
	ids := make([]string, 0, len(k.keks))
	for _, id := range k.IDs() {
		ids = append(ids, string(id))
	}
	return slog.GroupValue(slog.String("current", string(k.current.id)), slog.Any("keks", ids))
}

// seal encodes kf and encrypts it to passphrase, ASCII-armored.
func seal(kf *keyFile, passphrase []byte, workFactor int) ([]byte, error) {
	plain, err := json.Marshal(kf)
	if err != nil {
		return nil, fmt.Errorf("keyring: encode key file: %w", err)
	}
	defer clear(plain)
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	r.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("keyring: encrypt key file: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("keyring: encrypt key file: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("keyring: encrypt key file: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("keyring: encrypt key file: %w", err)
	}
	return buf.Bytes(), nil
}

// readFile reads, decrypts and validates the key file at path.
func readFile(path string, passphrase []byte, maxWorkFactor int) (*keyFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: open key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: read key file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, errors.New("keyring: key file too large")
	}
	if len(passphrase) == 0 {
		return nil, ErrWrongPassphrase
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), id)
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return nil, ErrWrongPassphrase
	} else if err != nil {
		return nil, fmt.Errorf("keyring: key file damaged: %v", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		clear(plain)
		return nil, fmt.Errorf("keyring: key file damaged: %v", err)
	}
	defer clear(plain)
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		// The JSON error may quote bytes of the plaintext; do not pass it on.
		return nil, errors.New("keyring: key file malformed")
	}
	if kf.Format != fileFormat || kf.Version != fileVersion {
		return nil, fmt.Errorf("keyring: unsupported key file format %q version %d", kf.Format, kf.Version)
	}
	return &kf, nil
}

// writeFile writes data to path atomically: a temporary file in the same
// directory, mode 0600, fsynced, then renamed into place (if replace) or
// linked into place (which fails if path exists), and the directory fsynced.
func writeFile(path string, data []byte, replace bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempFilePattern)
	if err != nil {
		return fmt.Errorf("keyring: create key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful link, removes the temporary name only
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keyring: create key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keyring: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keyring: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keyring: close key file: %w", err)
	}
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("keyring: replace key file: %w", err)
		}
		return syncDir(dir)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return ErrExist
	} else if err != nil {
		// Hard links are unsupported on some file systems; fall back to a
		// rename after checking again that nothing is in the way.
		if _, serr := os.Lstat(path); serr == nil {
			return ErrExist
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("keyring: create key file: %w", err)
		}
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync directory: %w", err)
	}
	return nil
}
