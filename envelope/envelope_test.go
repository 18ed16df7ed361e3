package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

var (
	ctx      = context.Background()
	testTime = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
)

// testBody returns a resource body of about n bytes.
func testBody(n int) []byte {
	b := []byte(`{"resourceType":"Observation","id":"obs-1","status":"final","note":"`)
	for len(b) < n-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

func testResource(compartment string) *phivault.Resource {
	return &phivault.Resource{
		Type:        "Observation",
		ID:          "obs-1",
		Version:     3,
		LastUpdated: testTime,
		Compartment: compartment,
		Body:        testBody(1400),
	}
}

// MustSeal seals r and fails the test on error.
func MustSeal(tb testing.TB, s *envelope.Sealer, tx phivault.StoreTx, r *phivault.Resource) *phivault.SealedResource {
	tb.Helper()
	sr, err := s.Seal(ctx, tx, r)
	if err != nil {
		tb.Fatalf("Seal = %v", err)
	}
	return sr
}

// wantIntegrity fails unless err is ErrIntegrity and r is nil.
func wantIntegrity(tb testing.TB, what string, r *phivault.Resource, err error) {
	tb.Helper()
	if !errors.Is(err, phivault.ErrIntegrity) || r != nil {
		tb.Fatalf("Open(%s) = %v, %v; want nil, ErrIntegrity", what, r, err)
	}
	if phivault.ErrorCode(err) != phivault.EINTEGRITY {
		tb.Fatalf("Open(%s) code = %q, want %q", what, phivault.ErrorCode(err), phivault.EINTEGRITY)
	}
}

func TestSealer_Seal(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		tx := newMemTx()
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		for _, compartment := range []string{"p-1", ""} {
			r := testResource(compartment)
			sr := MustSeal(t, s, tx, r)
			if sr.Type != r.Type || sr.ID != r.ID || sr.Version != r.Version || !sr.LastUpdated.Equal(r.LastUpdated) ||
				sr.Compartment != compartment || sr.Deleted {
				t.Errorf("Seal metadata = %+v, want that of %+v", sr, r)
			}
			if want := envelope.KeyID(compartment); sr.KeyID != want {
				t.Errorf("KeyID = %q, want %q", sr.KeyID, want)
			}
			if len(sr.Ciphertext) != 1+12+len(r.Body)+16 || sr.Ciphertext[0] != 1 {
				t.Errorf("Ciphertext is %d bytes starting %#x, want %d starting 0x01", len(sr.Ciphertext), sr.Ciphertext[0], 1+12+len(r.Body)+16)
			}
			if bytes.Contains(sr.Ciphertext, []byte("resourceType")) {
				t.Error("Ciphertext contains plaintext")
			}
			got, err := s.Open(ctx, tx, sr)
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			if !bytes.Equal(got.Body, r.Body) || got.Type != r.Type || got.ID != r.ID || got.Version != r.Version ||
				!got.LastUpdated.Equal(r.LastUpdated) || got.Compartment != compartment || got.Deleted {
				t.Errorf("Open = %+v, want %+v", got, r)
			}
		}
		if tx.keys["patient/p-1"] == nil || tx.keys["shared"] == nil || len(tx.keys) != 2 {
			t.Errorf("stored keys = %v, want patient/p-1 and shared", keyIDs(tx))
		}
		// A second Sealer (another node, or after a restart) opens it too.
		sr := MustSeal(t, s, tx, testResource("p-1"))
		if _, err := envelope.New(&fakeKeyring{}, envelope.Options{}).Open(ctx, tx, sr); err != nil {
			t.Errorf("Open by another Sealer = %v", err)
		}
	})
	t.Run("FreshNonces", func(t *testing.T) {
		tx := newMemTx()
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		a := MustSeal(t, s, tx, testResource("p-1"))
		b := MustSeal(t, s, tx, testResource("p-1"))
		if bytes.Equal(a.Ciphertext[1:13], b.Ciphertext[1:13]) {
			t.Error("two seals used the same nonce")
		}
	})
	t.Run("Tombstone", func(t *testing.T) {
		tx := newMemTx()
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		r := &phivault.Resource{Type: "Patient", ID: "p-1", Version: 2, LastUpdated: testTime, Compartment: "p-1", Deleted: true}
		sr := MustSeal(t, s, tx, r)
		if !sr.Deleted || sr.Ciphertext != nil || sr.KeyID != "" {
			t.Errorf("Seal(tombstone) = %+v, want Deleted with no ciphertext or key", sr)
		}
		got, err := s.Open(ctx, tx, sr)
		if err != nil || !got.Deleted || got.Body != nil || got.Version != 2 {
			t.Errorf("Open(tombstone) = %+v, %v", got, err)
		}
		if len(tx.keys) != 0 {
			t.Errorf("a tombstone created keys %v", keyIDs(tx))
		}
	})
	t.Run("ErrNoBody", func(t *testing.T) {
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		r := testResource("p-1")
		r.Body = nil
		if sr, err := s.Seal(ctx, newMemTx(), r); err == nil {
			t.Fatalf("Seal(no body) = %+v, want an error", sr)
		}
	})
	t.Run("ErrKeyring", func(t *testing.T) {
		keys := &fakeKeyring{fail: true}
		tx := newMemTx()
		s := envelope.New(keys, envelope.Options{})
		if _, err := s.Seal(ctx, tx, testResource("p-1")); !errors.Is(err, errKeyringDown) {
			t.Fatalf("Seal with keyring down = %v, want errKeyringDown", err)
		}
		if len(tx.keys) != 0 {
			t.Errorf("keys stored despite the error: %v", keyIDs(tx))
		}
	})
	t.Run("FirstWriterWins", func(t *testing.T) {
		// Another writer stored the compartment's key between our Key and
		// PutKey: Seal must use that key, not its own.
		tx := newMemTx()
		other := envelope.New(&fakeKeyring{}, envelope.Options{})
		MustSeal(t, other, tx, testResource("p-1"))
		stored := tx.keys["patient/p-1"]

		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		tx.hideKeys = true
		sr := MustSeal(t, s, tx, testResource("p-1"))
		tx.hideKeys = false
		if tx.keys["patient/p-1"] != stored {
			t.Fatal("PutKey replaced the first writer's key")
		}
		if _, err := other.Open(ctx, tx, sr); err != nil {
			t.Errorf("Open under the first writer's key = %v", err)
		}
	})
	t.Run("KeyRowChanged", func(t *testing.T) {
		// The key was created in a transaction that rolled back, so the
		// cached key is not the stored one: Seal must not use it, and Open
		// must still open what was sealed under the stored key.
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		MustSeal(t, s, newMemTx(), testResource("p-1")) // rolled back
		tx := newMemTx()
		other := envelope.New(&fakeKeyring{}, envelope.Options{})
		sr := MustSeal(t, other, tx, testResource("p-1"))
		if _, err := s.Open(ctx, tx, sr); err != nil {
			t.Errorf("Open with a stale cached key = %v", err)
		}
		MustSeal(t, s, newMemTx(), testResource("p-1")) // caches yet another key
		sr = MustSeal(t, s, tx, testResource("p-1"))
		if _, err := other.Open(ctx, tx, sr); err != nil {
			t.Errorf("Seal used a key other than the stored one: Open = %v", err)
		}
	})
}

func keyIDs(tx *memTx) []string {
	var ids []string
	for id := range tx.keys {
		ids = append(ids, id)
	}
	return ids
}

func TestSealer_Open(t *testing.T) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{})
	r := testResource("p-1")
	r.Body = testBody(200) // smaller, so that every bit can be flipped quickly
	sr := MustSeal(t, s, tx, r)
	// Another compartment's key exists, so that moving to it meets a real key.
	MustSeal(t, s, tx, testResource("p-2"))
	MustSeal(t, s, tx, testResource(""))

	t.Run("BitFlips", func(t *testing.T) {
		for i := range sr.Ciphertext {
			for bit := range 8 {
				bad := *sr
				bad.Ciphertext = bytes.Clone(sr.Ciphertext)
				bad.Ciphertext[i] ^= 1 << bit
				got, err := s.Open(ctx, tx, &bad)
				wantIntegrity(t, fmt.Sprintf("bit %d of byte %d flipped", bit, i), got, err)
			}
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		for n := range len(sr.Ciphertext) {
			bad := *sr
			bad.Ciphertext = sr.Ciphertext[:n]
			got, err := s.Open(ctx, tx, &bad)
			wantIntegrity(t, fmt.Sprintf("truncated to %d", n), got, err)
		}
		bad := *sr
		bad.Ciphertext = append(bytes.Clone(sr.Ciphertext), 0)
		got, err := s.Open(ctx, tx, &bad)
		wantIntegrity(t, "extended", got, err)
	})
	t.Run("Moved", func(t *testing.T) {
		tests := []struct {
			name string
			move func(*phivault.SealedResource)
		}{
			{"other id", func(m *phivault.SealedResource) { m.ID = "obs-2" }},
			{"other type", func(m *phivault.SealedResource) { m.Type = "Condition" }},
			{"older version", func(m *phivault.SealedResource) { m.Version-- }},
			{"newer version", func(m *phivault.SealedResource) { m.Version++ }},
			{"other time", func(m *phivault.SealedResource) { m.LastUpdated = m.LastUpdated.Add(time.Microsecond) }},
			{"other compartment", func(m *phivault.SealedResource) { m.Compartment, m.KeyID = "p-2", "patient/p-2" }},
			{"shared compartment", func(m *phivault.SealedResource) { m.Compartment, m.KeyID = "", "shared" }},
			{"ambiguous fields", func(m *phivault.SealedResource) { m.Type, m.ID = "Observationo", "bs-1" }},
			{"missing key", func(m *phivault.SealedResource) { m.Compartment, m.KeyID = "p-9", "patient/p-9" }},
			{"wrong key id", func(m *phivault.SealedResource) { m.KeyID = "patient/p-2" }},
			{"index key id", func(m *phivault.SealedResource) { m.KeyID = "index" }},
			{"no key id", func(m *phivault.SealedResource) { m.KeyID = "" }},
			{"unknown format", func(m *phivault.SealedResource) { m.Ciphertext = append([]byte{2}, m.Ciphertext[1:]...) }},
			{"tombstone with ciphertext", func(m *phivault.SealedResource) { m.Deleted = true }},
			{"no ciphertext", func(m *phivault.SealedResource) { m.Ciphertext = nil }},
		}
		for _, tt := range tests {
			moved := *sr
			tt.move(&moved)
			got, err := s.Open(ctx, tx, &moved)
			wantIntegrity(t, tt.name, got, err)
		}
	})
	t.Run("SwappedCiphertexts", func(t *testing.T) {
		// Two versions of one resource: each ciphertext fails in the
		// other's row.
		r1, r2 := testResource("p-1"), testResource("p-1")
		r2.Version++
		s1, s2 := MustSeal(t, s, tx, r1), MustSeal(t, s, tx, r2)
		s1.Ciphertext, s2.Ciphertext = s2.Ciphertext, s1.Ciphertext
		got, err := s.Open(ctx, tx, s1)
		wantIntegrity(t, "v2 ciphertext in v1 row", got, err)
		got, err = s.Open(ctx, tx, s2)
		wantIntegrity(t, "v1 ciphertext in v2 row", got, err)
	})
	t.Run("ErrKeyring", func(t *testing.T) {
		keys := &fakeKeyring{}
		s := envelope.New(keys, envelope.Options{})
		sr := MustSeal(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, testResource("p-1"))
		keys.setFail(true)
		if got, err := s.Open(ctx, tx, sr); !errors.Is(err, errKeyringDown) || got != nil {
			t.Fatalf("Open with keyring down = %v, %v; want errKeyringDown", got, err)
		}
	})
}

func TestSealer_Cache(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		sr := MustSeal(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, testResource("p-1"))
		s := envelope.New(keys, envelope.Options{})
		for range 5 {
			if _, err := s.Open(ctx, tx, sr); err != nil {
				t.Fatal(err)
			}
			MustSeal(t, s, tx, testResource("p-1"))
		}
		if n := keys.unwrapCount(); n != 1 {
			t.Errorf("keyring unwrapped %d times, want 1", n)
		}
	})
	t.Run("TTL", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		sr := MustSeal(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, testResource("p-1"))
		now := testTime
		s := envelope.New(keys, envelope.Options{CacheTTL: time.Minute, Now: func() time.Time { return now }})
		open := func() {
			t.Helper()
			if _, err := s.Open(ctx, tx, sr); err != nil {
				t.Fatal(err)
			}
		}
		open()
		now = now.Add(59 * time.Second)
		open()
		if n := keys.unwrapCount(); n != 1 {
			t.Errorf("within TTL: keyring unwrapped %d times, want 1", n)
		}
		now = now.Add(time.Second)
		open()
		if n := keys.unwrapCount(); n != 2 {
			t.Errorf("after TTL: keyring unwrapped %d times, want 2", n)
		}
	})
	t.Run("Size", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		s := envelope.New(keys, envelope.Options{CacheSize: 2})
		for _, p := range []string{"a", "b", "c", "d"} {
			MustSeal(t, s, tx, testResource(p))
		}
		if n := envelope.CachedKeysForTest(s); n != 2 {
			t.Errorf("cache holds %d keys, want 2", n)
		}
		// "d" is cached; "a" was evicted and costs an unwrap.
		before := keys.unwrapCount()
		MustSeal(t, s, tx, testResource("d"))
		if keys.unwrapCount() != before {
			t.Error("most recent key was not cached")
		}
		MustSeal(t, s, tx, testResource("a"))
		if keys.unwrapCount() != before+1 {
			t.Error("evicted key did not cost an unwrap")
		}
	})
	t.Run("Disabled", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		s := envelope.New(keys, envelope.Options{CacheSize: -1})
		sr := MustSeal(t, s, tx, testResource("p-1"))
		for range 3 {
			if _, err := s.Open(ctx, tx, sr); err != nil {
				t.Fatal(err)
			}
		}
		if n := keys.unwrapCount(); n != 3 {
			t.Errorf("keyring unwrapped %d times, want 3", n)
		}
	})
	t.Run("FailedUnwrap", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		sr := MustSeal(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, testResource("p-1"))
		s := envelope.New(keys, envelope.Options{})
		keys.setFail(true)
		if _, err := s.Open(ctx, tx, sr); err == nil {
			t.Fatal("Open with keyring down = nil error")
		}
		if n := envelope.CachedKeysForTest(s); n != 0 {
			t.Errorf("cache holds %d keys after a failed unwrap, want 0", n)
		}
		keys.setFail(false)
		if _, err := s.Open(ctx, tx, sr); err != nil {
			t.Errorf("Open after the keyring recovered = %v", err)
		}
	})
	t.Run("Forget", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		s := envelope.New(keys, envelope.Options{})
		sr := MustSeal(t, s, tx, testResource("p-1"))
		s.Forget("patient/p-1")
		delete(tx.keys, "patient/p-1") // crypto-shredded
		got, err := s.Open(ctx, tx, sr)
		wantIntegrity(t, "shredded key", got, err)
	})
}

func TestSealer_Init(t *testing.T) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{})
	for range 2 {
		if err := s.Init(ctx, tx); err != nil {
			t.Fatalf("Init = %v", err)
		}
	}
	if tx.keys["shared"] == nil || tx.keys["index"] == nil || len(tx.keys) != 2 || tx.puts != 2 {
		t.Errorf("Init stored keys %v with %d puts, want shared and index once", keyIDs(tx), tx.puts)
	}
}

func TestSealer_Concurrent(t *testing.T) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{CacheSize: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				r := testResource(fmt.Sprintf("p-%d", (g+i)%5))
				sr, err := s.Seal(ctx, tx, r)
				if err != nil {
					errs <- err
					return
				}
				got, err := s.Open(ctx, tx, sr)
				if err != nil || !bytes.Equal(got.Body, r.Body) {
					errs <- fmt.Errorf("Open = %v", err)
					return
				}
				if _, err := s.Tokens(ctx, tx, []phivault.IndexValue{{Param: "Patient.family", Value: strings.Repeat("a", i)}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
