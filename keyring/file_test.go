package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/keyring"
)

// keyName is the name the tests bind their wraps to, a DEK id as the
// envelope layer stores it.
const keyName = "patient/0f8e2c4a-1b3d-4e5f-8a9b-7c6d5e4f3a21"

var (
	testPassphrase = []byte("correct horse battery staple")
	testOptions    = keyring.FileOptions{WorkFactor: 10} // fast; production uses DefaultWorkFactor
)

// MustCreate creates a key file in a temporary directory and returns its path.
func MustCreate(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "keys.age")
	if err := keyring.CreateFile(path, testPassphrase, testOptions); err != nil {
		tb.Fatalf("CreateFile = %v", err)
	}
	return path
}

// MustOpen creates a key file and opens it.
func MustOpen(tb testing.TB) (*keyring.FileKeyring, string) {
	tb.Helper()
	path := MustCreate(tb)
	k, err := keyring.OpenFile(path, testPassphrase, testOptions)
	if err != nil {
		tb.Fatalf("OpenFile = %v", err)
	}
	return k, path
}

func TestCreateFile(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := MustCreate(t)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("key file mode = %v, want 0600", got)
		}
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries, want only the key file", len(entries))
		}
	})
	t.Run("ErrExist", func(t *testing.T) {
		path := MustCreate(t)
		before, _ := os.ReadFile(path)
		if err := keyring.CreateFile(path, testPassphrase, testOptions); !errors.Is(err, keyring.ErrExist) {
			t.Fatalf("CreateFile over existing file = %v, want ErrExist", err)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Error("existing key file was changed")
		}
	})
	t.Run("ErrShortPassphrase", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.age")
		err := keyring.CreateFile(path, []byte("short pass!"), testOptions) // 11 bytes
		if !errors.Is(err, keyring.ErrShortPassphrase) {
			t.Fatalf("CreateFile(11-byte passphrase) = %v, want ErrShortPassphrase", err)
		}
		if phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("ErrorCode = %q, want %q", phivault.ErrorCode(err), phivault.EINVALID)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("key file was written despite the error: %v", err)
		}
	})
	t.Run("Rand", func(t *testing.T) {
		// The KEK comes from the injected randomness.
		seed := bytes.Repeat([]byte{0x42}, 64)
		opts := testOptions
		opts.Rand = bytes.NewReader(seed)
		path := filepath.Join(t.TempDir(), "keys.age")
		if err := keyring.CreateFile(path, testPassphrase, opts); err != nil {
			t.Fatal(err)
		}
		k, err := keyring.OpenFile(path, testPassphrase, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyring.KEKForTest(k, k.Current()); !bytes.Equal(got, seed[:keyring.KEKSize]) {
			t.Errorf("KEK = %x, want the injected bytes", got)
		}
	})
}

func TestOpenFile(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := MustCreate(t)
		k1, err := keyring.OpenFile(path, testPassphrase, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := keyring.OpenFile(path, testPassphrase, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		if k1.Current() != "file:1" {
			t.Errorf("Current() = %q, want file:1", k1.Current())
		}
		if !bytes.Equal(keyring.KEKForTest(k1, "file:1"), keyring.KEKForTest(k2, "file:1")) {
			t.Error("two opens of one key file disagree on the KEK")
		}
	})
	t.Run("ErrWrongPassphrase", func(t *testing.T) {
		path := MustCreate(t)
		for _, pass := range [][]byte{[]byte("correct horse battery stapler"), {}, []byte("c")} {
			k, err := keyring.OpenFile(path, pass, testOptions)
			if !errors.Is(err, keyring.ErrWrongPassphrase) || k != nil {
				t.Errorf("OpenFile(wrong passphrase) = %v, %v; want nil, ErrWrongPassphrase", k, err)
			}
		}
	})
	t.Run("Tampered", func(t *testing.T) {
		path := MustCreate(t)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Change one base64 character at a time, across the whole armored
		// body (header line excluded), and expect every open to fail.
		start := bytes.IndexByte(data, '\n') + 1
		end := bytes.LastIndex(data, []byte("-----END"))
		tried := 0
		for i := start; i < end; i += 7 {
			if data[i] == '\n' || data[i] == '=' {
				continue
			}
			bad := bytes.Clone(data)
			if bad[i] == 'A' {
				bad[i] = 'B'
			} else {
				bad[i] = 'A'
			}
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			if k, err := keyring.OpenFile(path, testPassphrase, testOptions); err == nil || k != nil {
				t.Fatalf("OpenFile(file with byte %d changed) = %v, %v; want an error", i, k, err)
			}
			tried++
		}
		if tried < 20 {
			t.Fatalf("only %d tamperings tried", tried)
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		path := MustCreate(t)
		data, _ := os.ReadFile(path)
		if err := os.WriteFile(path, data[:len(data)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.OpenFile(path, testPassphrase, testOptions); err == nil {
			t.Fatal("OpenFile(truncated file) = nil error")
		}
	})
	t.Run("ErrNotExist", func(t *testing.T) {
		_, err := keyring.OpenFile(filepath.Join(t.TempDir(), "nope"), testPassphrase, testOptions)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenFile(missing) = %v, want ErrNotExist", err)
		}
	})
}

func TestFileKeyring_NoKEKLeak(t *testing.T) {
	k, path := MustOpen(t)
	kek := keyring.KEKForTest(k, k.Current())
	if len(kek) != keyring.KEKSize {
		t.Fatalf("KEKForTest returned %d bytes", len(kek))
	}
	leaks := func(where string, b []byte) {
		t.Helper()
		for _, form := range [][]byte{
			kek,
			[]byte(hex.EncodeToString(kek)),
			[]byte(base64.StdEncoding.EncodeToString(kek)),
			[]byte(base64.RawURLEncoding.EncodeToString(kek)),
			[]byte(fmt.Sprint(kek)),
		} {
			if bytes.Contains(b, form) {
				t.Errorf("%s contains the KEK", where)
			}
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	leaks("key file", data)
	leaks("%v", []byte(fmt.Sprintf("%v", k)))
	leaks("%+v", []byte(fmt.Sprintf("%+v", k)))
	leaks("%#v", []byte(fmt.Sprintf("%#v", k)))
	leaks("%x", []byte(fmt.Sprintf("%x", k)))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("keyring", "k", k)
	leaks("slog", buf.Bytes())
	if !bytes.Contains(buf.Bytes(), []byte("file:1")) {
		t.Errorf("slog output %s does not name the key id", buf.Bytes())
	}
}

func TestFileKeyring_WrapKey(t *testing.T) {
	ctx := context.Background()
	dek := bytes.Repeat([]byte{7}, 32)
	t.Run("OK", func(t *testing.T) {
		k, path := MustOpen(t)
		id, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		if id != "file:1" {
			t.Errorf("WrapKey id = %q, want file:1", id)
		}
		if bytes.Contains(wrapped, dek) {
			t.Error("wrapped key contains the DEK")
		}
		// A second open of the same file unwraps it.
		k2, err := keyring.OpenFile(path, testPassphrase, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k2.UnwrapKey(ctx, id, keyName, wrapped)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("UnwrapKey = %x, %v; want %x", got, err, dek)
		}
		// Fresh nonces: wrapping twice gives different bytes.
		_, wrapped2, _ := k.WrapKey(ctx, keyName, dek)
		if bytes.Equal(wrapped, wrapped2) {
			t.Error("two wraps of one DEK are equal")
		}
	})
	t.Run("ErrUnwrap", func(t *testing.T) {
		k, _ := MustOpen(t)
		id, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wrapped {
			for bit := range 8 {
				bad := bytes.Clone(wrapped)
				bad[i] ^= 1 << bit
				if got, err := k.UnwrapKey(ctx, id, keyName, bad); !errors.Is(err, keyring.ErrUnwrap) || got != nil {
					t.Fatalf("UnwrapKey(bit %d of byte %d flipped) = %x, %v; want ErrUnwrap", bit, i, got, err)
				}
			}
		}
		for _, n := range []int{0, 1, 12, 27, len(wrapped) - 1} {
			if _, err := k.UnwrapKey(ctx, id, keyName, wrapped[:n]); !errors.Is(err, keyring.ErrUnwrap) {
				t.Errorf("UnwrapKey(truncated to %d) = %v, want ErrUnwrap", n, err)
			}
		}
		// Another key file's KEK has the same id but must not unwrap it.
		other, _ := MustOpen(t)
		if _, err := other.UnwrapKey(ctx, id, keyName, wrapped); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey under another KEK = %v, want ErrUnwrap", err)
		}
	})
	t.Run("ErrUnknownKEK", func(t *testing.T) {
		k, _ := MustOpen(t)
		_, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []phivault.KeyID{"file:2", "", "kms:1"} {
			if _, err := k.UnwrapKey(ctx, id, keyName, wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
				t.Errorf("UnwrapKey(%q) = %v, want ErrUnknownKEK", id, err)
			}
		}
	})
}

func BenchmarkFileKeyring_UnwrapKey(b *testing.B) {
	ctx := context.Background()
	k, _ := MustOpen(b)
	id, wrapped, _ := k.WrapKey(ctx, keyName, make([]byte, 32))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.UnwrapKey(ctx, id, keyName, wrapped); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenFile_DefaultWorkFactor(b *testing.B) {
	path := filepath.Join(b.TempDir(), "keys.age")
	if err := keyring.CreateFile(path, testPassphrase, keyring.FileOptions{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := keyring.OpenFile(path, testPassphrase, keyring.FileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRotateFile(t *testing.T) {
	ctx := context.Background()
	dek := bytes.Repeat([]byte{9}, 32)
	t.Run("OK", func(t *testing.T) {
		k1, path := MustOpen(t)
		id1, wrapped1, err := k1.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		id, err := keyring.RotateFile(path, testPassphrase, testOptions)
		if err != nil || id != "file:2" {
			t.Fatalf("RotateFile = %q, %v; want file:2", id, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("rotated key file: %v, %v", fi, err)
		}
		k2, err := keyring.OpenFile(path, testPassphrase, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		if k2.Current() != "file:2" || len(k2.IDs()) != 2 {
			t.Errorf("after rotation: current %q, ids %v", k2.Current(), k2.IDs())
		}
		if !bytes.Equal(keyring.KEKForTest(k1, "file:1"), keyring.KEKForTest(k2, "file:1")) {
			t.Error("rotation changed the old KEK")
		}
		if got, err := k2.UnwrapKey(ctx, id1, keyName, wrapped1); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("UnwrapKey(old version) = %x, %v", got, err)
		}
		id2, wrapped2, err := k2.WrapKey(ctx, keyName, dek)
		if err != nil || id2 != "file:2" {
			t.Fatalf("WrapKey after rotation = %q, %v; want file:2", id2, err)
		}
		if _, err := k1.UnwrapKey(ctx, id2, keyName, wrapped2); !errors.Is(err, keyring.ErrUnknownKEK) {
			t.Errorf("old keyring UnwrapKey(file:2) = %v, want ErrUnknownKEK", err)
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, keyring.KEKForTest(k2, "file:2")) {
			t.Error("rotated key file contains the new KEK")
		}
	})
	t.Run("ErrWrongPassphrase", func(t *testing.T) {
		path := MustCreate(t)
		before, _ := os.ReadFile(path)
		if _, err := keyring.RotateFile(path, []byte("not the passphrase"), testOptions); !errors.Is(err, keyring.ErrWrongPassphrase) {
			t.Fatalf("RotateFile(wrong passphrase) = %v, want ErrWrongPassphrase", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Error("key file changed")
		}
	})
}
