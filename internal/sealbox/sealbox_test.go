package sealbox_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/sealbox"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

type state struct {
	Challenge string `json:"c"`
	Pending   string `json:"p"`
}

func mustNew(tb testing.TB, key []byte) *sealbox.Box {
	tb.Helper()
	b, err := sealbox.New(key, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBox_Open(t *testing.T) {
	b := mustNew(t, nil)
	want := state{Challenge: "ch", Pending: "p1"}
	tok, err := b.Seal("login", want, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		var got state
		exp, err := b.Open("login", tok, t0, &got)
		if err != nil || got != want || !exp.Equal(t0.Add(time.Minute)) {
			t.Errorf("Open = %+v, %v, %v, want %+v, %v", got, exp, err, want, t0.Add(time.Minute))
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		flipped := []byte(tok)
		flipped[30] ^= 1
		tests := []struct {
			name    string
			box     *sealbox.Box
			purpose string
			token   string
			now     time.Time
		}{
			{"expired", b, "login", tok, t0.Add(time.Minute)},
			{"other purpose", b, "register", tok, t0},
			{"other key", mustNew(t, nil), "login", tok, t0},
			{"changed", b, "login", string(flipped), t0},
			{"cut", b, "login", tok[:len(tok)-1], t0},
			{"padded", b, "login", tok + "=", t0},
			{"empty", b, "login", "", t0},
			{"too long", b, "login", strings.Repeat("A", sealbox.MaxToken+1), t0},
		}
		for _, tt := range tests {
			var got state
			if _, err := tt.box.Open(tt.purpose, tt.token, tt.now, &got); !errors.Is(err, sealbox.ErrInvalid) || got != (state{}) {
				t.Errorf("%s: Open = %+v, %v, want ErrInvalid and nothing decoded", tt.name, got, err)
			}
		}
	})
}

// TestBox_Seal checks that two seals of one value differ (fresh nonces)
// and that a shared key opens the other box's tokens.
func TestBox_Seal(t *testing.T) {
	key := bytes.Repeat([]byte{7}, sealbox.KeySize)
	a, b := mustNew(t, key), mustNew(t, key)
	t1, _ := a.Seal("x", 1, t0.Add(time.Hour))
	t2, _ := a.Seal("x", 1, t0.Add(time.Hour))
	if t1 == t2 {
		t.Error("two seals of one value are equal")
	}
	var n int
	if _, err := b.Open("x", t1, t0, &n); err != nil || n != 1 {
		t.Errorf("Open under a shared key = %d, %v, want 1", n, err)
	}
	if _, err := sealbox.New(key[:16], nil); err == nil {
		t.Error("New with a 16-byte key succeeded")
	}
}

// FuzzOpen checks the one decryption path: no input panics, nothing but
// the sealed token opens, and no single-bit change of it opens.
func FuzzOpen(f *testing.F) {
	b := mustNew(f, nil)
	valid, err := b.Seal("p", state{Challenge: "c"}, t0.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, 0)
	f.Add(valid[:len(valid)-1], 5)
	f.Add("", 3)
	f.Add(strings.Repeat("A", 64), 7)
	f.Fuzz(func(t *testing.T, token string, bit int) {
		var s state
		if _, err := b.Open("p", token, t0, &s); token != valid && err == nil {
			t.Fatalf("Open(%q) succeeded for a token the box did not seal", token)
		}
		raw := []byte(valid)
		i := (bit & 0x7fffffff) % len(raw)
		raw[i] ^= 1 << (uint(bit) % 6)
		if _, err := b.Open("p", string(raw), t0, &s); string(raw) != valid && err == nil {
			t.Fatalf("a token changed at character %d opens", i)
		}
	})
}
