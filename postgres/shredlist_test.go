package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

func TestDB_Shreds(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	t.Run("None", func(t *testing.T) {
		got, err := db.Shreds(ctx)
		if err != nil || len(got) != 0 {
			t.Errorf("Shreds() of a store without shreds = %v, %v; want none", got, err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		at := time.Date(2026, 12, 6, 14, 5, 0, 123456000, time.UTC)
		if err := db.Update(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", at) }); err != nil {
			t.Fatal(err)
		}
		got, err := db.Shreds(ctx)
		if err != nil || len(got) != 1 || !got["p1"].Equal(at) {
			t.Errorf("Shreds() = %v, %v; want p1 at %v", got, err, at)
		}
	})
}
