package envelope_test

import (
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

// MustTokens computes tokens and fails the test on error.
func MustTokens(tb testing.TB, s *envelope.Sealer, tx phivault.StoreTx, values ...phivault.IndexValue) []phivault.Token {
	tb.Helper()
	tokens, err := s.Tokens(ctx, tx, values)
	if err != nil {
		tb.Fatalf("Tokens = %v", err)
	}
	if len(tokens) != len(values) {
		tb.Fatalf("Tokens returned %d tokens for %d values", len(tokens), len(values))
	}
	return tokens
}

func TestSealer_Tokens(t *testing.T) {
	family := func(v string) phivault.IndexValue { return phivault.IndexValue{Param: "Patient.family", Value: v} }
	given := func(v string) phivault.IndexValue { return phivault.IndexValue{Param: "Patient.given", Value: v} }

	t.Run("OK", func(t *testing.T) {
		tx := newMemTx()
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		got := MustTokens(t, s, tx, family("smith"), given("smith"), family("jones"), family("smith"), family(""))
		if tx.keys["index"] == nil {
			t.Fatal("Tokens did not store the index key")
		}
		if got[0] != got[3] {
			t.Error("equal values of one parameter have different tokens")
		}
		if got[0] == got[1] {
			t.Error("one value under two parameters has equal tokens")
		}
		if got[0] == got[2] || got[0] == got[4] {
			t.Error("different values have equal tokens")
		}
		// Order follows the input, and another Sealer over the same store
		// (another node, a restart) agrees.
		again := MustTokens(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, family(""), family("smith"))
		if again[0] != got[4] || again[1] != got[0] {
			t.Error("tokens differ between Sealers sharing an index key")
		}
	})
	t.Run("IndexKeyIsSecret", func(t *testing.T) {
		a := MustTokens(t, envelope.New(&fakeKeyring{}, envelope.Options{}), newMemTx(), family("smith"))
		b := MustTokens(t, envelope.New(&fakeKeyring{}, envelope.Options{}), newMemTx(), family("smith"))
		if a[0] == b[0] {
			t.Error("two vaults with different index keys produce equal tokens")
		}
	})
	t.Run("Empty", func(t *testing.T) {
		tx := newMemTx()
		got, err := envelope.New(&fakeKeyring{}, envelope.Options{}).Tokens(ctx, tx, nil)
		if err != nil || len(got) != 0 {
			t.Errorf("Tokens(nil) = %v, %v; want none", got, err)
		}
	})
	t.Run("Cached", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		MustTokens(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, family("x"))
		s := envelope.New(keys, envelope.Options{})
		for range 3 {
			MustTokens(t, s, tx, family("smith"), given("anne"))
		}
		if n := keys.unwrapCount(); n != 1 {
			t.Errorf("keyring unwrapped %d times, want 1", n)
		}
	})
	t.Run("ErrKeyring", func(t *testing.T) {
		keys := &fakeKeyring{}
		tx := newMemTx()
		MustTokens(t, envelope.New(&fakeKeyring{}, envelope.Options{}), tx, family("x"))
		keys.setFail(true)
		if got, err := envelope.New(keys, envelope.Options{}).Tokens(ctx, tx, []phivault.IndexValue{family("x")}); err == nil {
			t.Fatalf("Tokens with keyring down = %v, want an error", got)
		}
	})
}
