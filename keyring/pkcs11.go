package keyring

// The PKCS#11 keyring: KEKs that live in a hardware security module (or
// SoftHSM2 in tests) and never leave it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/phivault/phivault"
)

// Defaults of the PKCS#11 keyring.
const (
	// DefaultPKCS11KEKPrefix is the CKA_LABEL prefix of phivault's KEKs in a
	// token: the KEK versions are labelled "phivault-kek-1", "phivault-kek-2", …
	DefaultPKCS11KEKPrefix = "phivault-kek-"
	// DefaultPKCS11Sessions is the largest number of PKCS#11 sessions a
	// PKCS11 keyring opens for wrapping and unwrapping at the same time.
	DefaultPKCS11Sessions = 8

	pkcs11IDPrefix = "pkcs11:"
	gcmTagBits     = 128
	gcmTagSize     = gcmTagBits / 8
)

// Errors returned by the PKCS#11 keyring. UnwrapKey returns ErrUnknownKEK and
// ErrUnwrap, as the file keyring does.
var (
	// ErrWrongPIN is returned by OpenPKCS11 and GeneratePKCS11Key when the
	// token rejects the user PIN.
	ErrWrongPIN = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Wrong PIN for the PKCS#11 token."}
	// ErrPINLocked is returned when the token has locked its user PIN after
	// too many wrong attempts; its security officer must reset it.
	ErrPINLocked = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The PKCS#11 token has locked its user PIN."}
	// ErrNoToken is returned when no slot holds a token with the configured
	// label.
	ErrNoToken = errors.New("keyring: pkcs11: no token with that label")
	// ErrNoKEK is returned by OpenPKCS11 when the token holds no KEK with the
	// configured label prefix. GeneratePKCS11Key creates one.
	ErrNoKEK = errors.New("keyring: pkcs11: token holds no kek; generate one first")
	// ErrClosed is returned by a PKCS11 keyring used after Close.
	ErrClosed = errors.New("keyring: pkcs11: keyring closed")
)

// PKCS11Config says where a PKCS11 keyring finds its KEKs. Module, TokenLabel
// and PIN are required.
//
// The PIN is a secret: String, GoString and LogValue never show it.
type PKCS11Config struct {
	// Module is the path of the PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel is the label of the token that holds the KEKs.
	TokenLabel string
	// PIN is the token's user PIN.
	PIN string
	// KEKPrefix is the CKA_LABEL prefix of the KEKs; KEK version n is
	// labelled KEKPrefix + n. Empty means DefaultPKCS11KEKPrefix.
	KEKPrefix string
	// MaxSessions bounds the PKCS#11 sessions used at once; callers beyond
	// it wait. Zero means DefaultPKCS11Sessions.
	MaxSessions int
	// Rand is the source of GCM nonces. Nil means crypto/rand.Reader.
	Rand io.Reader
}

func (c PKCS11Config) withDefaults() (PKCS11Config, error) {
	if c.KEKPrefix == "" {
		c.KEKPrefix = DefaultPKCS11KEKPrefix
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultPKCS11Sessions
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	switch {
	case c.Module == "":
		return c, errors.New("keyring: pkcs11: no module path")
	case c.TokenLabel == "":
		return c, errors.New("keyring: pkcs11: no token label")
	case c.MaxSessions < 0:
		return c, errors.New("keyring: pkcs11: negative session limit")
	}
	return c, nil
}

// String describes the configuration without its PIN.
func (c PKCS11Config) String() string {
	return fmt.Sprintf("PKCS11Config{module: %s, token: %q, kek prefix: %q, pin: [redacted]}", c.Module, c.TokenLabel, c.KEKPrefix)
}

// GoString is String, so that %#v cannot print the PIN.
func (c PKCS11Config) GoString() string { return c.String() }

// LogValue logs the configuration without its PIN.
func (c PKCS11Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("module", c.Module),
		slog.String("token", c.TokenLabel),
		slog.String("kek_prefix", c.KEKPrefix),
	)
}

// PKCS11 is a phivault.Keyring whose KEKs are AES-256 keys in a PKCS#11
// token (an HSM). It wraps a DEK by encrypting it inside the token with
// CKM_AES_GCM under the current KEK, so KEKs never leave the token; the
// current KEK is the one with the highest version. Key ids are "pkcs11:"
// followed by the KEK's label.
//
// The set of KEKs is read when the keyring is opened: a KEK generated later
// is seen only by keyrings opened after it.
//
// A PKCS11 keyring is safe for concurrent use by multiple goroutines: it
// keeps a pool of up to MaxSessions sessions. Close it when done.
type PKCS11 struct {
	mod     *pkcs11Module
	slot    uint
	token   string
	login   pkcs11.SessionHandle // held open so the token stays logged in
	keks    map[phivault.KeyID]*pkcs11KEK
	current *pkcs11KEK
	rand    io.Reader

	sem  chan struct{}             // one token per session in use
	idle chan pkcs11.SessionHandle // open sessions not in use
	done chan struct{}             // closed by Close
	once sync.Once
}

type pkcs11KEK struct {
	id     phivault.KeyID
	handle pkcs11.ObjectHandle
	ad     []byte // wrapLabel ‖ 0x00 ‖ id
}

var _ phivault.Keyring = (*PKCS11)(nil)

// OpenPKCS11 loads cfg.Module, logs in to the token labelled cfg.TokenLabel
// with cfg.PIN, and finds its KEKs. It returns ErrWrongPIN if the token
// rejects the PIN, ErrNoToken if no such token is present, and ErrNoKEK if the
// token holds no KEK labelled cfg.KEKPrefix + n. It refuses a KEK that the
// token would let out (extractable or not sensitive).
func OpenPKCS11(cfg PKCS11Config) (_ *PKCS11, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s, err := openPKCS11Session(cfg, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	objs, err := s.findKEKs(cfg.KEKPrefix)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, ErrNoKEK
	}
	k := &PKCS11{
		mod:   s.mod,
		slot:  s.slot,
		token: cfg.TokenLabel,
		login: s.sh,
		keks:  make(map[phivault.KeyID]*pkcs11KEK, len(objs)),
		rand:  cfg.Rand,
		sem:   make(chan struct{}, cfg.MaxSessions),
		idle:  make(chan pkcs11.SessionHandle, cfg.MaxSessions),
		done:  make(chan struct{}),
	}
	for _, o := range objs {
		if err := s.checkKEK(o); err != nil {
			return nil, err
		}
		id := phivault.KeyID(pkcs11IDPrefix + o.label)
		ad := append([]byte(wrapLabel), 0)
		c := &pkcs11KEK{id: id, handle: o.handle, ad: append(ad, id...)}
		k.keks[id] = c
		if k.current == nil {
			k.current = c // objs is sorted newest first
		}
	}
	return k, nil
}

// GeneratePKCS11Key creates a new KEK version in the token: a non-extractable,
// sensitive AES-256 token object labelled cfg.KEKPrefix + n, one above the
// highest version present (1 in an empty token). Keyrings opened afterwards
// wrap under it; older versions stay and keep unwrapping. It returns the new
// KEK's key id.
func GeneratePKCS11Key(cfg PKCS11Config) (_ phivault.KeyID, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return "", err
	}
	s, err := openPKCS11Session(cfg, true)
	if err != nil {
		return "", err
	}
	defer s.close()
	objs, err := s.findKEKs(cfg.KEKPrefix)
	if err != nil {
		return "", err
	}
	next := uint64(1)
	if len(objs) > 0 {
		next = objs[0].version + 1
	}
	label := cfg.KEKPrefix + strconv.FormatUint(next, 10)
	ctx := s.mod.ctx
	h, err := ctx.GenerateKey(s.sh,
		[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, KEKSize),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			// The KEK must never leave the token, in the clear or wrapped.
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			// It only encrypts and decrypts DEKs.
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		})
	if err != nil {
		return "", fmt.Errorf("keyring: pkcs11: generate kek: %w", err)
	}
	// Two generators racing would both pick version next; keep neither
	// ambiguous label, and let the caller try again.
	same, err := s.findByLabel(label)
	if err != nil {
		return "", err
	}
	if len(same) != 1 {
		if derr := ctx.DestroyObject(s.sh, h); derr != nil {
			return "", fmt.Errorf("keyring: pkcs11: kek %s generated concurrently; destroy own copy: %w", label, derr)
		}
		return "", fmt.Errorf("keyring: pkcs11: kek %s generated concurrently; try again", label)
	}
	return phivault.KeyID(pkcs11IDPrefix + label), nil
}

// WrapKey wraps dek under the current KEK with AES-256-GCM inside the token,
// with a random 96-bit nonce from the configured source. The additional data
// binds the KEK id and the purpose "phivault dek v1". The result is
// nonce ‖ ciphertext ‖ tag.
func (k *PKCS11) WrapKey(ctx context.Context, dek []byte) (phivault.KeyID, []byte, error) {
	c := k.current
	iv := make([]byte, wrapNonceSize)
	if _, err := io.ReadFull(k.rand, iv); err != nil {
		return "", nil, fmt.Errorf("keyring: wrap: nonce: %w", err)
	}
	sh, err := k.acquire(ctx)
	if err != nil {
		return "", nil, err
	}
	params := pkcs11.NewGCMParams(iv, c.ad, gcmTagBits)
	defer params.Free()
	p11 := k.mod.ctx
	if err := p11.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, c.handle); err != nil {
		k.release(sh, err)
		return "", nil, fmt.Errorf("keyring: wrap under %s: %w", c.id, err)
	}
	ct, err := p11.Encrypt(sh, dek)
	if err != nil {
		k.release(sh, err)
		return "", nil, fmt.Errorf("keyring: wrap under %s: %w", c.id, err)
	}
	// Some HSMs choose the IV themselves and write it back; store the one
	// actually used.
	used := params.IV()
	k.release(sh, nil)
	if len(used) != wrapNonceSize || len(ct) != len(dek)+gcmTagSize {
		return "", nil, fmt.Errorf("keyring: wrap under %s: token returned an unexpected GCM layout", c.id)
	}
	out := make([]byte, 0, wrapNonceSize+len(ct))
	return c.id, append(append(out, used...), ct...), nil
}

// UnwrapKey unwraps a DEK wrapped by WrapKey under KEK id, inside the token.
// It returns ErrUnknownKEK if the keyring does not hold id and ErrUnwrap if
// wrapped was altered or was wrapped under another KEK; never a wrong key.
func (k *PKCS11) UnwrapKey(ctx context.Context, id phivault.KeyID, wrapped []byte) ([]byte, error) {
	c := k.keks[id]
	if c == nil {
		return nil, ErrUnknownKEK
	}
	if len(wrapped) < wrapNonceSize+gcmTagSize {
		return nil, ErrUnwrap
	}
	sh, err := k.acquire(ctx)
	if err != nil {
		return nil, err
	}
	params := pkcs11.NewGCMParams(wrapped[:wrapNonceSize], c.ad, gcmTagBits)
	defer params.Free()
	p11 := k.mod.ctx
	if err := p11.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, c.handle); err != nil {
		k.release(sh, err)
		return nil, fmt.Errorf("keyring: unwrap under %s: %w", c.id, err)
	}
	dek, err := p11.Decrypt(sh, wrapped[wrapNonceSize:])
	k.release(sh, err)
	var rv pkcs11.Error
	if errors.As(err, &rv) {
		switch rv {
		case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:
			return nil, ErrUnwrap
		case pkcs11.CKR_GENERAL_ERROR:
			// SoftHSM2 reports a GCM tag mismatch this way. Keep the code
			// for operators, in case the token meant something else.
			return nil, fmt.Errorf("%w (token said %v)", ErrUnwrap, rv)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: unwrap under %s: %w", c.id, err)
	}
	return dek, nil
}

// Current returns the id of the KEK that WrapKey uses.
func (k *PKCS11) Current() phivault.KeyID { return k.current.id }

// IDs returns the ids of every KEK version the keyring holds, sorted.
func (k *PKCS11) IDs() []phivault.KeyID {
	ids := make([]phivault.KeyID, 0, len(k.keks))
	for id := range k.keks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// String describes the keyring by its token and key ids only.
func (k *PKCS11) String() string {
	ids := make([]string, 0, len(k.keks))
	for _, id := range k.IDs() {
		ids = append(ids, string(id))
	}
	return fmt.Sprintf("PKCS11{token: %q, current: %s, keks: [%s]}", k.token, k.current.id, strings.Join(ids, " "))
}

// GoString is String.
func (k *PKCS11) GoString() string { return k.String() }

// LogValue logs the token and key ids only.
func (k *PKCS11) LogValue() slog.Value {
	ids := make([]string, 0, len(k.keks))
	for _, id := range k.IDs() {
		ids = append(ids, string(id))
	}
	return slog.GroupValue(slog.String("token", k.token), slog.String("current", string(k.current.id)), slog.Any("keks", ids))
}

// Close waits for operations in progress, closes the keyring's sessions
// (which logs out of the token once no other keyring in the process uses it)
// and releases the PKCS#11 library. Operations after Close return ErrClosed.
// Close is safe to call more than once.
func (k *PKCS11) Close() error {
	var err error
	k.once.Do(func() {
		close(k.done)
		for range cap(k.sem) {
			k.sem <- struct{}{} // wait for every session in use to come back
		}
		close(k.idle)
		for sh := range k.idle {
			err = errors.Join(err, k.mod.ctx.CloseSession(sh))
		}
		s := &pkcs11Session{mod: k.mod, slot: k.slot, sh: k.login}
		err = errors.Join(err, s.close())
		if err != nil {
			err = fmt.Errorf("keyring: pkcs11: close: %w", err)
		}
	})
	return err
}

// acquire returns a session for one operation, opening one if none is idle
// and fewer than MaxSessions are in use, or waiting otherwise. New sessions
// share the login of k.login.
func (k *PKCS11) acquire(ctx context.Context) (pkcs11.SessionHandle, error) {
	select {
	case k.sem <- struct{}{}:
	case <-k.done:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case <-k.done: // Close began while this caller waited
		<-k.sem
		return 0, ErrClosed
	default:
	}
	select {
	case sh := <-k.idle:
		return sh, nil
	default:
	}
	sh, err := k.mod.ctx.OpenSession(k.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		<-k.sem
		return 0, fmt.Errorf("keyring: pkcs11: open session: %w", err)
	}
	return sh, nil
}

// release returns sh to the pool after an operation. If the operation failed,
// sh is closed instead, since a failed call may leave an operation active in
// it.
func (k *PKCS11) release(sh pkcs11.SessionHandle, opErr error) {
	if opErr != nil {
		_ = k.mod.ctx.CloseSession(sh) // best effort: the session is dropped either way
	} else {
		k.idle <- sh // cannot block: at most cap(sem) sessions exist
	}
	<-k.sem
}

// pkcs11Session is a logged-in session on the configured token.
type pkcs11Session struct {
	mod  *pkcs11Module
	slot uint
	sh   pkcs11.SessionHandle
}

// openPKCS11Session loads the module, finds the token and logs in.
func openPKCS11Session(cfg PKCS11Config, rw bool) (_ *pkcs11Session, err error) {
	mod, err := loadPKCS11Module(cfg.Module)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			mod.release()
		}
	}()
	slot, err := mod.findToken(cfg.TokenLabel)
	if err != nil {
		return nil, err
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION)
	if rw {
		flags |= pkcs11.CKF_RW_SESSION
	}
	sh, err := mod.ctx.OpenSession(slot, flags)
	if err != nil {
		return nil, fmt.Errorf("keyring: pkcs11: open session: %w", err)
	}
	if err := mod.login(slot, sh, cfg.PIN); err != nil {
		_ = mod.ctx.CloseSession(sh)
		return nil, err
	}
	return &pkcs11Session{mod: mod, slot: slot, sh: sh}, nil
}

// close closes the session, forgets its login and releases the module.
func (s *pkcs11Session) close() error {
	err := s.mod.ctx.CloseSession(s.sh)
	s.mod.logout(s.slot)
	s.mod.release()
	return err
}

type pkcs11Object struct {
	handle  pkcs11.ObjectHandle
	label   string
	version uint64
}

// findKEKs returns the AES secret keys labelled prefix + n (n ≥ 1, decimal,
// no leading zeros), newest first. Two keys with one label are an error.
func (s *pkcs11Session) findKEKs(prefix string) ([]pkcs11Object, error) {
	handles, err := s.find([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
	})
	if err != nil {
		return nil, err
	}
	var objs []pkcs11Object
	seen := make(map[string]bool)
	for _, h := range handles {
		attrs, err := s.mod.ctx.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
		if err != nil {
			return nil, fmt.Errorf("keyring: pkcs11: read key label: %w", err)
		}
		label := string(attrs[0].Value)
		n, ok := strings.CutPrefix(label, prefix)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil || v == 0 || strconv.FormatUint(v, 10) != n {
			continue
		}
		if seen[label] {
			return nil, fmt.Errorf("keyring: pkcs11: two keys labelled %s", label)
		}
		seen[label] = true
		objs = append(objs, pkcs11Object{handle: h, label: label, version: v})
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].version > objs[j].version })
	return objs, nil
}

func (s *pkcs11Session) findByLabel(label string) ([]pkcs11.ObjectHandle, error) {
	return s.find([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	})
}

func (s *pkcs11Session) find(template []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	p11 := s.mod.ctx
	if err := p11.FindObjectsInit(s.sh, template); err != nil {
		return nil, fmt.Errorf("keyring: pkcs11: find keys: %w", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := p11.FindObjects(s.sh, 64)
		if err != nil {
			_ = p11.FindObjectsFinal(s.sh)
			return nil, fmt.Errorf("keyring: pkcs11: find keys: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := p11.FindObjectsFinal(s.sh); err != nil {
		return nil, fmt.Errorf("keyring: pkcs11: find keys: %w", err)
	}
	return all, nil
}

// checkKEK refuses a key the token would reveal, or one of the wrong size.
func (s *pkcs11Session) checkKEK(o pkcs11Object) error {
	attrs, err := s.mod.ctx.GetAttributeValue(s.sh, o.handle, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
	})
	if err != nil {
		return fmt.Errorf("keyring: pkcs11: kek %s: read attributes: %w", o.label, err)
	}
	sensitive := bytes.Equal(attrs[0].Value, []byte{1})
	extractable := !bytes.Equal(attrs[1].Value, []byte{0})
	if !sensitive || extractable {
		return fmt.Errorf("keyring: pkcs11: kek %s can leave the token (sensitive %t, extractable %t); refusing it", o.label, sensitive, extractable)
	}
	if size, err := bytesToUint(attrs[2].Value); err != nil || size != KEKSize {
		return fmt.Errorf("keyring: pkcs11: kek %s is not an AES-256 key", o.label)
	}
	return nil
}

// bytesToUint decodes a CK_ULONG attribute value, which is in host byte
// order.
func bytesToUint(b []byte) (uint64, error) {
	switch len(b) {
	case 4:
		return uint64(binary.NativeEndian.Uint32(b)), nil
	case 8:
		return binary.NativeEndian.Uint64(b), nil
	}
	return 0, errors.New("bad CK_ULONG")
}

// A pkcs11Module is a loaded, initialized PKCS#11 library.
//
// Cryptoki keeps its state per process: C_Initialize may be called once,
// C_Finalize ends it for every user in the process, and a token's login is
// shared by all sessions of the process. So keyrings that use the same
// library share one pkcs11Module, counted by references, and the login of
// each token is counted too. This registry is the package's only global
// state, forced by that of the library.
type pkcs11Module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int                     // guarded by pkcs11Modules.mu
	logs map[uint]*pkcs11LoginAt // guarded by pkcs11Modules.mu; slot → login
}

// pkcs11LoginAt records a token's login: the salted hash of the PIN that
// succeeded, to check the PIN of later users, who cannot log in again.
type pkcs11LoginAt struct {
	salt [16]byte
	sum  [sha256.Size]byte
	refs int
}

var pkcs11Modules = struct {
	mu   sync.Mutex
	byID map[string]*pkcs11Module
}{byID: make(map[string]*pkcs11Module)}

func loadPKCS11Module(path string) (*pkcs11Module, error) {
	pkcs11Modules.mu.Lock()
	defer pkcs11Modules.mu.Unlock()
	if m := pkcs11Modules.byID[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("keyring: pkcs11: cannot load module %s", path)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("keyring: pkcs11: initialize module %s: %w", path, err)
	}
	m := &pkcs11Module{path: path, ctx: ctx, refs: 1, logs: make(map[uint]*pkcs11LoginAt)}
	pkcs11Modules.byID[path] = m
	return m, nil
}

func (m *pkcs11Module) release() {
	pkcs11Modules.mu.Lock()
	defer pkcs11Modules.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(pkcs11Modules.byID, m.path)
	_ = m.ctx.Finalize() // nothing useful to do if the library fails to finalize
	m.ctx.Destroy()
}

func (m *pkcs11Module) findToken(label string) (uint, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("keyring: pkcs11: list slots: %w", err)
	}
	var found []uint
	for _, slot := range slots {
		ti, err := m.ctx.GetTokenInfo(slot)
		if err != nil {
			return 0, fmt.Errorf("keyring: pkcs11: read token info: %w", err)
		}
		if ti.Label == label {
			found = append(found, slot)
		}
	}
	switch len(found) {
	case 0:
		return 0, ErrNoToken
	case 1:
		return found[0], nil
	default:
		return 0, fmt.Errorf("keyring: pkcs11: %d tokens labelled %q", len(found), label)
	}
}

// login logs in to the token in slot through sh, or, if this process is
// already logged in to it, checks pin against the PIN that logged in.
func (m *pkcs11Module) login(slot uint, sh pkcs11.SessionHandle, pin string) error {
	pkcs11Modules.mu.Lock()
	defer pkcs11Modules.mu.Unlock()
	if l := m.logs[slot]; l != nil {
		sum := pinSum(l.salt, pin)
		if subtle.ConstantTimeCompare(sum[:], l.sum[:]) != 1 {
			return ErrWrongPIN
		}
		l.refs++
		return nil
	}
	err := m.ctx.Login(sh, pkcs11.CKU_USER, pin)
	var rv pkcs11.Error
	if errors.As(err, &rv) {
		switch rv {
		case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_INVALID:
			return ErrWrongPIN
		case pkcs11.CKR_PIN_LOCKED:
			return ErrPINLocked
		case pkcs11.CKR_USER_ALREADY_LOGGED_IN:
			// Someone else in this process logged in; the token does not
			// check the PIN again, so neither can we.
			return errors.New("keyring: pkcs11: token already logged in outside this keyring")
		}
	}
	if err != nil {
		return fmt.Errorf("keyring: pkcs11: login: %w", err)
	}
	l := &pkcs11LoginAt{refs: 1}
	if _, err := rand.Read(l.salt[:]); err != nil {
		return fmt.Errorf("keyring: pkcs11: login: %w", err)
	}
	l.sum = pinSum(l.salt, pin)
	m.logs[slot] = l
	return nil
}

// logout forgets one user of slot's login. The token itself logs out when the
// last session of the process closes.
func (m *pkcs11Module) logout(slot uint) {
	pkcs11Modules.mu.Lock()
	defer pkcs11Modules.mu.Unlock()
	if l := m.logs[slot]; l != nil {
		if l.refs--; l.refs == 0 {
			delete(m.logs, slot)
		}
	}
}

func pinSum(salt [16]byte, pin string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write([]byte(pin))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
