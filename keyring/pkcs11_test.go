package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/keyring"
)

// softHSM is set up once by TestMain: SOFTHSM2_CONF is read by the library
// when it is initialized and is global to the process, so every PKCS#11 test
// shares one token and tells its keys apart by KEK prefix. softHSMSkip says
// why the PKCS#11 tests cannot run, if they cannot.
var softHSMSkip string

func TestMain(m *testing.M) {
	dir, err := keyringtest.SetUpSoftHSM()
	if errors.Is(err, keyringtest.ErrNoSoftHSM) {
		softHSMSkip = err.Error()
	} else if err != nil { // installed but broken: a failure, not a skip
		fmt.Fprintln(os.Stderr, "SoftHSM2 set-up:", err)
		os.Exit(1)
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// softHSMConfig returns a configuration for the test token whose KEK prefix
// is unique to tb, so that tests sharing the token do not see each other's
// KEKs.
func softHSMConfig(tb testing.TB) keyring.PKCS11Config {
	tb.Helper()
	if softHSMSkip != "" {
		tb.Skip(softHSMSkip)
	}
	return keyring.PKCS11Config{
		Module:     keyringtest.SoftHSMModule,
		TokenLabel: keyringtest.SoftHSMToken,
		PIN:        keyringtest.SoftHSMPIN,
		KEKPrefix:  strings.NewReplacer("/", "-", " ", "-").Replace(tb.Name()) + "-kek-",
	}
}

// MustGeneratePKCS11Key generates a KEK version in the test token.
func MustGeneratePKCS11Key(tb testing.TB, cfg keyring.PKCS11Config) phivault.KeyID {
	tb.Helper()
	id, err := keyring.GeneratePKCS11Key(cfg)
	if err != nil {
		tb.Fatalf("GeneratePKCS11Key = %v", err)
	}
	return id
}

// MustOpenPKCS11 opens cfg's keyring and closes it when tb ends.
func MustOpenPKCS11(tb testing.TB, cfg keyring.PKCS11Config) *keyring.PKCS11 {
	tb.Helper()
	k, err := keyring.OpenPKCS11(cfg)
	if err != nil {
		tb.Fatalf("OpenPKCS11 = %v", err)
	}
	tb.Cleanup(func() {
		if err := k.Close(); err != nil {
			tb.Errorf("Close = %v", err)
		}
	})
	return k
}

func TestPKCS11_Conformance(t *testing.T) {
	ctx := context.Background()
	cfg := softHSMConfig(t)
	MustGeneratePKCS11Key(t, cfg)
	keyringtest.Run(t, func(t *testing.T) phivault.Keyring {
		return MustOpenPKCS11(t, cfg)
	})
	cfgs := make(map[envelope.UnboundRefuser]keyring.PKCS11Config)
	keyringtest.RunUnbound(t, keyringtest.UnboundBackend{
		New: func(t *testing.T) envelope.UnboundRefuser {
			cfg := softHSMConfig(t)
			MustGeneratePKCS11Key(t, cfg)
			k := MustOpenPKCS11(t, cfg)
			cfgs[k] = cfg
			return k
		},
		Old: func(t *testing.T) envelope.UnboundRefuser {
			cfg := softHSMConfig(t)
			id := MustGeneratePKCS11Key(t, cfg)
			k := MustOpenPKCS11(t, cfg)
			if err := keyring.PKCS11AcceptUnboundForTest(ctx, k, id); err != nil {
				t.Fatal(err)
			}
			cfgs[k] = cfg
			return k
		},
		WrapUnbound: func(t *testing.T, k envelope.UnboundRefuser, id phivault.KeyID, dek []byte) []byte {
			wrapped, err := keyring.PKCS11WrapUnboundForTest(ctx, k.(*keyring.PKCS11), id, dek)
			if err != nil {
				t.Fatal(err)
			}
			return wrapped
		},
		Reopen: func(t *testing.T, k envelope.UnboundRefuser) envelope.UnboundRefuser {
			return MustOpenPKCS11(t, cfgs[k])
		},
	})
}

func TestOpenPKCS11(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		cfg := softHSMConfig(t)
		id := MustGeneratePKCS11Key(t, cfg)
		if want := phivault.KeyID("pkcs11:" + cfg.KEKPrefix + "1"); id != want {
			t.Errorf("GeneratePKCS11Key = %s, want %s", id, want)
		}
		k := MustOpenPKCS11(t, cfg)
		if k.Current() != id {
			t.Errorf("Current() = %s, want %s", k.Current(), id)
		}
		// Two keyrings on one token in one process share its login.
		k2 := MustOpenPKCS11(t, cfg)
		kid, wrapped, err := k.WrapKey(context.Background(), keyName, make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k2.UnwrapKey(context.Background(), kid, keyName, wrapped); err != nil {
			t.Errorf("UnwrapKey in a second keyring = %v", err)
		}
	})
	t.Run("ErrWrongPIN", func(t *testing.T) {
		cfg := softHSMConfig(t)
		MustGeneratePKCS11Key(t, cfg)
		cfg.PIN = "4321"
		k, err := keyring.OpenPKCS11(cfg)
		if !errors.Is(err, keyring.ErrWrongPIN) {
			if k != nil {
				k.Close()
			}
			t.Fatalf("OpenPKCS11(wrong PIN) = %v, want ErrWrongPIN", err)
		}
		if phivault.ErrorCode(err) != phivault.EUNAUTHORIZED {
			t.Errorf("ErrorCode = %s, want %s", phivault.ErrorCode(err), phivault.EUNAUTHORIZED)
		}
		if strings.Contains(err.Error(), cfg.PIN) {
			t.Errorf("error %q shows the PIN", err)
		}
		if _, err := keyring.GeneratePKCS11Key(cfg); !errors.Is(err, keyring.ErrWrongPIN) {
			t.Errorf("GeneratePKCS11Key(wrong PIN) = %v, want ErrWrongPIN", err)
		}
	})
	t.Run("ErrWrongPINWhileLoggedIn", func(t *testing.T) {
		// The token does not check a PIN once the process is logged in;
		// the keyring must.
		cfg := softHSMConfig(t)
		MustGeneratePKCS11Key(t, cfg)
		MustOpenPKCS11(t, cfg)
		cfg.PIN = "4321"
		k, err := keyring.OpenPKCS11(cfg)
		if !errors.Is(err, keyring.ErrWrongPIN) {
			if k != nil {
				k.Close()
			}
			t.Fatalf("OpenPKCS11(wrong PIN) while logged in = %v, want ErrWrongPIN", err)
		}
	})
	t.Run("ErrNoToken", func(t *testing.T) {
		cfg := softHSMConfig(t)
		cfg.TokenLabel = "no-such-token"
		if _, err := keyring.OpenPKCS11(cfg); !errors.Is(err, keyring.ErrNoToken) {
			t.Fatalf("OpenPKCS11(unknown token) = %v, want ErrNoToken", err)
		}
	})
	t.Run("ErrNoKEK", func(t *testing.T) {
		cfg := softHSMConfig(t)
		if _, err := keyring.OpenPKCS11(cfg); !errors.Is(err, keyring.ErrNoKEK) {
			t.Fatalf("OpenPKCS11(no kek) = %v, want ErrNoKEK", err)
		}
	})
	t.Run("ErrModule", func(t *testing.T) {
		cfg := softHSMConfig(t)
		cfg.Module = filepath.Join(t.TempDir(), "missing.so")
		if _, err := keyring.OpenPKCS11(cfg); err == nil {
			t.Fatal("OpenPKCS11(missing module) succeeded")
		}
	})
	t.Run("ErrExtractableKEK", func(t *testing.T) {
		cfg := softHSMConfig(t)
		withToken(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
			_, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, cfg.KEKPrefix+"1"),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		if k, err := keyring.OpenPKCS11(cfg); err == nil {
			k.Close()
			t.Fatal("OpenPKCS11 accepted an extractable KEK")
		}
	})
}

func TestGeneratePKCS11Key(t *testing.T) {
	t.Run("NotExtractable", func(t *testing.T) {
		cfg := softHSMConfig(t)
		id := MustGeneratePKCS11Key(t, cfg)
		label := strings.TrimPrefix(string(id), "pkcs11:")
		withToken(t, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
			h := findKey(t, p, sh, label)
			attrs, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []bool{true, true, false, true, true} {
				if got := bytes.Equal(attrs[i].Value, []byte{1}); got != want {
					t.Errorf("attribute %#x = %t, want %t", attrs[i].Type, got, want)
				}
			}
			// The token refuses to reveal the key's value…
			v, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
				t.Errorf("GetAttributeValue(CKA_VALUE) returned %d attributes, error %v; want CKR_ATTRIBUTE_SENSITIVE", len(v), err)
			}
			// …and to wrap it under another key.
			wk, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			})
			if err != nil {
				t.Fatal(err)
			}
			if w, err := p.WrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}, wk, h); err == nil {
				t.Errorf("WrapKey(kek) = %x, want an error", w)
			}
		})
	})
	t.Run("Rotate", func(t *testing.T) {
		ctx := context.Background()
		cfg := softHSMConfig(t)
		id1 := MustGeneratePKCS11Key(t, cfg)
		dek := []byte("0123456789abcdef0123456789abcdef")
		old := MustOpenPKCS11(t, cfg)
		_, wrapped1, err := old.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		id2 := MustGeneratePKCS11Key(t, cfg)
		if id2 == id1 || id2 != phivault.KeyID("pkcs11:"+cfg.KEKPrefix+"2") {
			t.Fatalf("second GeneratePKCS11Key = %s after %s", id2, id1)
		}
		if old.Current() != id1 {
			t.Errorf("open keyring switched to %s", old.Current())
		}
		k := MustOpenPKCS11(t, cfg)
		if k.Current() != id2 {
			t.Errorf("Current() = %s, want %s", k.Current(), id2)
		}
		if ids := k.IDs(); len(ids) != 2 || ids[0] != id1 || ids[1] != id2 {
			t.Errorf("IDs() = %v, want [%s %s]", ids, id1, id2)
		}
		got, err := k.UnwrapKey(ctx, id1, keyName, wrapped1)
		if err != nil || !bytes.Equal(got, dek) {
			t.Errorf("UnwrapKey(old version) = %x, %v", got, err)
		}
		if _, err := k.UnwrapKey(ctx, id2, keyName, wrapped1); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey under the wrong version = %v, want ErrUnwrap", err)
		}
		id, _, err := k.WrapKey(ctx, keyName, dek)
		if err != nil || id != id2 {
			t.Errorf("WrapKey = %s, %v; want %s", id, err, id2)
		}
	})
}

func TestPKCS11_UnwrapKey(t *testing.T) {
	ctx := context.Background()
	cfg := softHSMConfig(t)
	MustGeneratePKCS11Key(t, cfg)
	k := MustOpenPKCS11(t, cfg)
	id, wrapped, err := k.WrapKey(ctx, keyName, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ErrUnwrap", func(t *testing.T) {
		for i := range wrapped {
			bad := bytes.Clone(wrapped)
			bad[i] ^= 1
			if _, err := k.UnwrapKey(ctx, id, keyName, bad); !errors.Is(err, keyring.ErrUnwrap) {
				t.Fatalf("UnwrapKey(bit 0 of byte %d flipped) = %v, want ErrUnwrap", i, err)
			}
		}
		if _, err := k.UnwrapKey(ctx, id, keyName, append(bytes.Clone(wrapped), 0)); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey(extended) = %v, want ErrUnwrap", err)
		}
	})
	t.Run("ErrUnknownKEK", func(t *testing.T) {
		// A KEK of another keyring in the same token is unknown here.
		other := softHSMConfig(t)
		oid := MustGeneratePKCS11Key(t, other)
		for _, bad := range []phivault.KeyID{oid, "file:1", "pkcs11:", phivault.KeyID(strings.TrimPrefix(string(id), "pkcs11:"))} {
			if _, err := k.UnwrapKey(ctx, bad, keyName, wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
				t.Errorf("UnwrapKey(%s) = %v, want ErrUnknownKEK", bad, err)
			}
		}
	})
}

func TestPKCS11_Concurrent(t *testing.T) {
	// More goroutines than sessions: callers wait for a free session.
	ctx := context.Background()
	cfg := softHSMConfig(t)
	cfg.MaxSessions = 2
	MustGeneratePKCS11Key(t, cfg)
	k := MustOpenPKCS11(t, cfg)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				dek := bytes.Repeat([]byte{byte(g), byte(i)}, 16)
				id, wrapped, err := k.WrapKey(ctx, keyName, dek)
				if err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 { // failures must not leak sessions
					wrapped[0] ^= 1
					if _, err := k.UnwrapKey(ctx, id, keyName, wrapped); !errors.Is(err, keyring.ErrUnwrap) {
						t.Errorf("UnwrapKey(tampered) = %v", err)
					}
					continue
				}
				got, err := k.UnwrapKey(ctx, id, keyName, wrapped)
				if err != nil || !bytes.Equal(got, dek) {
					t.Errorf("UnwrapKey = %x, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPKCS11_Close(t *testing.T) {
	ctx := context.Background()
	cfg := softHSMConfig(t)
	MustGeneratePKCS11Key(t, cfg)
	k, err := keyring.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, wrapped, err := k.WrapKey(ctx, keyName, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, _, err := k.WrapKey(ctx, keyName, make([]byte, 32)); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("WrapKey after Close = %v, want ErrClosed", err)
	}
	if _, err := k.UnwrapKey(ctx, id, keyName, wrapped); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("UnwrapKey after Close = %v, want ErrClosed", err)
	}
	// The library was finalized and loads again.
	k2 := MustOpenPKCS11(t, cfg)
	if _, err := k2.UnwrapKey(ctx, id, keyName, wrapped); err != nil {
		t.Errorf("UnwrapKey after reopening = %v", err)
	}
}

func TestPKCS11_WrapKey_Canceled(t *testing.T) {
	cfg := softHSMConfig(t)
	MustGeneratePKCS11Key(t, cfg)
	k := MustOpenPKCS11(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// With a free session the operation may run; it must not hang or
	// misbehave either way.
	if _, _, err := k.WrapKey(ctx, keyName, make([]byte, 32)); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("WrapKey(canceled) = %v", err)
	}
}

func TestPKCS11_LogValue(t *testing.T) {
	cfg := softHSMConfig(t)
	cfg.PIN = "pin-" + strings.Repeat("s3cret", 3)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("open", "config", cfg)
	for _, s := range []string{buf.String(), cfg.String(), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg)} {
		if strings.Contains(s, cfg.PIN) {
			t.Errorf("%q shows the PIN", s)
		}
		if !strings.Contains(s, cfg.TokenLabel) {
			t.Errorf("%q does not name the token", s)
		}
	}

	cfg.PIN = keyringtest.SoftHSMPIN
	id := MustGeneratePKCS11Key(t, cfg)
	k := MustOpenPKCS11(t, cfg)
	buf.Reset()
	log.Info("open", "keyring", k)
	for _, s := range []string{buf.String(), k.String(), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if !strings.Contains(s, string(id)) {
			t.Errorf("%q does not name KEK %s", s, id)
		}
	}
}

// withToken runs f with a session of its own, logged in to the test token,
// through the PKCS#11 library directly. No keyring may be open meanwhile: the
// library's state is per process.
func withToken(t *testing.T, f func(p *pkcs11.Ctx, sh pkcs11.SessionHandle)) {
	t.Helper()
	p := pkcs11.New(keyringtest.SoftHSMModule)
	if p == nil {
		t.Fatal("cannot load SoftHSM2")
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatalf("Initialize = %v", err)
	}
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil || ti.Label != keyringtest.SoftHSMToken {
			continue
		}
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_USER, keyringtest.SoftHSMPIN); err != nil {
			t.Fatal(err)
		}
		f(p, sh)
		return
	}
	t.Fatal("test token not found")
}

func findKey(t *testing.T, p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) pkcs11.ObjectHandle {
	t.Helper()
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := p.FindObjects(sh, 2)
	p.FindObjectsFinal(sh)
	if err != nil || len(hs) != 1 {
		t.Fatalf("FindObjects(%s) = %v, %v; want one key", label, hs, err)
	}
	return hs[0]
}

// BenchmarkPKCS11 measures wrapping and unwrapping 32-byte DEKs in SoftHSM2,
// by one goroutine and by 8.
func BenchmarkPKCS11(b *testing.B) {
	ctx := context.Background()
	cfg := softHSMConfig(b)
	MustGeneratePKCS11Key(b, cfg)
	k := MustOpenPKCS11(b, cfg)
	dek := make([]byte, 32)
	id, wrapped, err := k.WrapKey(ctx, keyName, dek)
	if err != nil {
		b.Fatal(err)
	}
	ops := map[string]func() error{
		"Wrap": func() error {
			_, _, err := k.WrapKey(ctx, keyName, dek)
			return err
		},
		"Unwrap": func() error {
			_, err := k.UnwrapKey(ctx, id, keyName, wrapped)
			return err
		},
	}
	for _, name := range []string{"Wrap", "Unwrap"} {
		op := ops[name]
		b.Run(name+"/1", func(b *testing.B) {
			for b.Loop() {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
		b.Run(name+"/8", func(b *testing.B) {
			var wg sync.WaitGroup
			per := (b.N + 7) / 8
			b.ResetTimer()
			for range 8 {
				wg.Go(func() {
					for range per {
						if err := op(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(per*8)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
