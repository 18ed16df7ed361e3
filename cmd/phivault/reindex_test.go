package main

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/phivault/phivault"
)

func reindexPending(t *testing.T, a *app) []string {
	t.Helper()
	var types []string
	err := a.db.View(context.Background(), func(tx phivault.StoreTx) (err error) {
		types, err = tx.ReindexPending(context.Background())
		return err
	})
	if err != nil {
		t.Fatalf("ReindexPending() = %v", err)
	}
	return types
}

// TestOpenApp_reindex checks that the vault reindexes what its migrations
// ask for before it serves: at start when it starts unsealed, else once
// it is unsealed.
func TestOpenApp_reindex(t *testing.T) {
	ctx := context.Background()
	t.Run("unsealed", func(t *testing.T) {
		d, _ := initTestData(t)
		a, err := openTestApp(d, AuditConfig{})
		if err != nil {
			t.Fatalf("openApp: %v", err)
		}
		defer a.Close()
		if got := reindexPending(t, a); len(got) != 0 {
			t.Errorf("ReindexPending() after openApp = %q, want none", got)
		}
	})
	t.Run("sealed", func(t *testing.T) {
		d, _ := initTestData(t)
		a, err := openApp(ctx, Config{Data: d, Audit: AuditConfig{WitnessFile: testWitness(d)}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("openApp: %v", err)
		}
		defer a.Close()
		if got := reindexPending(t, a); !slices.Contains(got, "CareTeam") {
			t.Fatalf("ReindexPending() of a sealed vault = %q, want CareTeam among them", got)
		}
		if err := a.seal.Unseal(ctx, []byte("correct horse battery staple")); err != nil {
			t.Fatalf("Unseal: %v", err)
		}
		a.reindex.wait()
		if got := reindexPending(t, a); len(got) != 0 {
			t.Errorf("ReindexPending() after Unseal = %q, want none", got)
		}
	})
}
