package envelope_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// rewrapFixture is a SQLite store with n compartments, one resource each,
// sealed under a reloading file keyring.
type rewrapFixture struct {
	db      *sqlite.DB
	keys    *keyring.Reloading
	pass    []byte
	keyPath string
	sealer  *envelope.Sealer
}

func newRewrapFixture(tb testing.TB, n int) *rewrapFixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	f := &rewrapFixture{pass: []byte(vaulttest.Passphrase)}
	f.keys, f.keyPath = vaulttest.Keyring(tb, dir)
	f.db, _ = vaulttest.SQLite(tb, dir)
	f.sealer = envelope.New(f.keys, envelope.Options{})
	for lo := 0; lo < n; lo += 500 {
		err := f.db.Update(ctx, func(tx phivault.StoreTx) error {
			for i := lo; i < min(lo+500, n); i++ {
				if err := f.put(ctx, tx, i, 1); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func (f *rewrapFixture) put(ctx context.Context, tx phivault.StoreTx, i int, version int64) error {
	id := fmt.Sprintf("p%05d", i)
	r := &phivault.Resource{Type: "Patient", ID: id, Version: version, LastUpdated: t0.Add(time.Duration(version) * time.Second),
		Compartment: id, Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"v":%d}`, id, version)}
	sr, err := f.sealer.Seal(ctx, tx, r)
	if err != nil {
		return err
	}
	return tx.Put(ctx, sr, nil)
}

// checkAllOpen opens the current version of each of the n resources with a
// Sealer that has no cache, so every key is unwrapped from its row.
func (f *rewrapFixture) checkAllOpen(t *testing.T, keys phivault.Keyring, n int) {
	t.Helper()
	ctx := context.Background()
	s := envelope.New(keys, envelope.Options{CacheSize: -1})
	err := f.db.View(ctx, func(tx phivault.StoreTx) error {
		for i := range n {
			sr, err := tx.Current(ctx, "Patient", fmt.Sprintf("p%05d", i))
			if err != nil {
				return err
			}
			if _, err := s.Open(ctx, tx, sr); err != nil {
				return fmt.Errorf("open p%05d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func kekCounts(t *testing.T, db phivault.Store) map[phivault.KeyID]int {
	t.Helper()
	var counts map[phivault.KeyID]int
	if err := db.View(context.Background(), func(tx phivault.StoreTx) (err error) {
		counts, err = tx.KeyCounts(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return counts
}

// TestRewrap rotates the KEK of a store with 5,000 DEKs and rewraps them
// all while readers open records (unwrapping keys from their rows) and
// writers add versions and new compartments. It interrupts the rewrap once
// and resumes it; at the end no key refers to the old KEK, the old version
// is retired from the key file, and every record still opens.
func TestRewrap(t *testing.T) {
	const n = 5000
	ctx := context.Background()
	f := newRewrapFixture(t, n)
	if got := kekCounts(t, f.db); got["file:1"] != n+0 {
		t.Fatalf("KeyCounts before rotation = %v, want file:1: %d", got, n)
	}
	newKEK, err := f.keys.Rotate(f.pass)
	if err != nil || newKEK != "file:2" {
		t.Fatalf("Rotate = %q, %v", newKEK, err)
	}

	// Interrupt the first run after its first batch.
	cctx, cancel := context.WithCancel(ctx)
	done1, err := envelope.Rewrap(cctx, f.db, f.keys, envelope.RewrapOptions{Batch: 500, Progress: func(done, total int) {
		if total != n {
			t.Errorf("Progress total = %d, want %d", total, n)
		}
		cancel()
	}})
	if err == nil || done1 != 500 {
		t.Fatalf("interrupted Rewrap = %d, %v; want 500 and an error", done1, err)
	}
	if got := kekCounts(t, f.db); got["file:1"] != n-500 || got["file:2"] != 500 {
		t.Fatalf("KeyCounts after the interrupted run = %v", got)
	}

	// Resume while readers and writers work.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, writes atomic.Int64
	var workErr atomic.Pointer[error]
	fail := func(err error) { workErr.CompareAndSwap(nil, &err) }
	reader := envelope.New(f.keys, envelope.Options{CacheSize: -1})
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p%05d", rng.IntN(n))
				err := f.db.View(ctx, func(tx phivault.StoreTx) error {
					sr, err := tx.Current(ctx, "Patient", id)
					if err != nil {
						return err
					}
					_, err = reader.Open(ctx, tx, sr)
					return err
				})
				if err != nil {
					fail(fmt.Errorf("read %s: %w", id, err))
					return
				}
				reads.Add(1)
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(7, 1))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := f.db.Update(ctx, func(tx phivault.StoreTx) error {
				if i%2 == 0 { // a new compartment: its DEK is wrapped under file:2
					return f.put(ctx, tx, n+i, 1)
				}
				id := fmt.Sprintf("p%05d", rng.IntN(n))
				cur, err := tx.Current(ctx, "Patient", id)
				if err != nil {
					return err
				}
				return f.put(ctx, tx, mustAtoi(id[1:]), cur.Version+1)
			})
			if err != nil {
				fail(fmt.Errorf("write: %w", err))
				return
			}
			writes.Add(1)
		}
	})
	var last int
	done2, err := envelope.Rewrap(ctx, f.db, f.keys, envelope.RewrapOptions{Batch: 500, Progress: func(done, total int) { last = done }})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("resumed Rewrap = %v", err)
	}
	if p := workErr.Load(); p != nil {
		t.Fatalf("concurrent work failed: %v", *p)
	}
	if done1+done2 != n || last != done2 {
		t.Errorf("rewrapped %d + %d keys (last progress %d), want %d in all", done1, done2, last, n)
	}
	t.Logf("rewrapped %d keys during %d reads and %d writes", done2, reads.Load(), writes.Load())
	counts := kekCounts(t, f.db)
	if counts["file:1"] != 0 {
		t.Fatalf("KeyCounts after rewrap = %v, want none under file:1", counts)
	}
	// Run again: nothing left to do.
	if again, err := envelope.Rewrap(ctx, f.db, f.keys, envelope.RewrapOptions{}); err != nil || again != 0 {
		t.Errorf("Rewrap again = %d, %v; want 0", again, err)
	}

	// Retire file:1; a keyring opened from the file has only file:2 and
	// still opens every record.
	if err := f.keys.Retire(f.pass, []phivault.KeyID{"file:1"}); err != nil {
		t.Fatal(err)
	}
	only2, err := keyring.OpenFile(f.keyPath, f.pass, vaulttest.KeyringOptions())
	if err != nil {
		t.Fatal(err)
	}
	if ids := only2.IDs(); len(ids) != 1 || ids[0] != "file:2" {
		t.Fatalf("key file after retiring file:1 holds %v", ids)
	}
	f.checkAllOpen(t, only2, n)
	if err := f.keys.Retire(f.pass, []phivault.KeyID{"file:2"}); !errors.Is(err, keyring.ErrRetireCurrent) {
		t.Errorf("Retire(current) = %v, want ErrRetireCurrent", err)
	}
}

func mustAtoi(s string) int {
	var n int
	fmt.Sscanf(s, "%d", &n)
	return n
}
