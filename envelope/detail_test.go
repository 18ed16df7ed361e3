package envelope_test

import (
	"context"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

// TestDetailTokens checks that raised-detail tokens are stable, keyed per
// parameter, under a stored key of their own, and unlike the blind
// index's tokens of the same values.
func TestDetailTokens(t *testing.T) {
	f := newAccountFixture(t)
	ctx := context.Background()
	vals := []phivault.IndexValue{{Param: "name", Value: "smith"}, {Param: "family", Value: "smith"}, {Param: "name", Value: "jones"}}
	got, err := f.sealer.DetailTokens(ctx, f.db, vals)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] == got[1] || got[0] == got[2] {
		t.Fatalf("tokens of different values or parameters are equal: %x", got)
	}
	again, err := f.sealer.DetailTokens(ctx, f.db, vals[:1])
	if err != nil || again[0] != got[0] {
		t.Fatalf("the token of one value changed: %x, %v", again, err)
	}
	var index []phivault.Token
	err = f.db.Update(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.Key(ctx, envelope.DetailKeyID); err != nil {
			return err
		}
		index, err = f.sealer.Tokens(ctx, tx, vals[:1])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if index[0] == got[0] {
		t.Fatal("a raised-detail token equals the blind index's token of the same value")
	}
	// Another vault (another key) gives other tokens.
	g := newAccountFixture(t)
	other, err := g.sealer.DetailTokens(ctx, g.db, vals[:1])
	if err != nil || other[0] == got[0] {
		t.Fatalf("two vaults give one token: %x, %v", other, err)
	}
}
