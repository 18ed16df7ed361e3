package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
)

// MustOpen opens a new database in a temp dir, closed when the test ends.
func MustOpen(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "phivault.db"))
}

func mustOpenPath(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db := sqlite.New(path)
	db.ReadConns = 2
	if err := db.Open(context.Background()); err != nil {
		tb.Fatalf("Open(%q) = %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) phivault.Store { return MustOpen(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) phivault.Store { return MustOpen(b) })
}

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func put(ctx context.Context, tx phivault.StoreTx, id string, v int64) error {
	return tx.Put(ctx, &phivault.SealedResource{Type: "Patient", ID: id, Version: v, LastUpdated: t0,
		KeyID: "shared", Ciphertext: []byte("x")}, []phivault.Token{storetest.Tok(id)})
}

func TestDB_Reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phivault.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	ctx := context.Background()
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "shared", KEKID: "k", Wrapped: []byte{1}, Created: t0}); err != nil {
			return err
		}
		return put(ctx, tx, "p1", 1)
	})
	if err != nil {
		t.Fatalf("Update() = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := db.Update(ctx, func(phivault.StoreTx) error { return nil }); err == nil {
		t.Errorf("Update() after Close = nil, want error")
	}
	if err := db.View(ctx, func(phivault.StoreTx) error { return nil }); err == nil {
		t.Errorf("View() after Close = nil, want error")
	}

	// Reopening applies no migration twice and sees everything committed.
	db2 := mustOpenPath(t, path)
	err = db2.View(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.Key(ctx, "shared"); err != nil {
			return err
		}
		r, err := tx.Current(ctx, "Patient", "p1")
		if err != nil {
			return err
		}
		if r.Version != 1 {
			t.Errorf("Current().Version = %d, want 1", r.Version)
		}
		n, err := tx.Count(ctx, phivault.ResourceFilter{Tokens: [][]phivault.Token{{storetest.Tok("p1")}}})
		if n != 1 {
			t.Errorf("Count(p1) = %d, want 1", n)
		}
		return err
	})
	if err != nil {
		t.Fatalf("View() after reopen = %v", err)
	}
}

func TestDB_Close(t *testing.T) {
	// Updates queued before Close complete; Close waits for them.
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	ctx := context.Background()
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			errs <- db.Update(ctx, func(tx phivault.StoreTx) error {
				return put(ctx, tx, string(rune('a'+i)), 1)
			})
		}()
	}
	ok := 0
	for range 10 {
		if err := <-errs; err == nil {
			ok++
		}
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	for range 10 {
		if err := <-errs; err == nil {
			ok++
		} else if phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
			t.Errorf("Update() during Close = %v, want nil or %s", err, phivault.EUNAVAILABLE)
		}
	}
	db2 := mustOpenPath(t, db.Path)
	err = db2.View(ctx, func(tx phivault.StoreTx) error {
		n, err := tx.Count(ctx, phivault.ResourceFilter{})
		if n != ok {
			t.Errorf("Count() = %d, want %d (the updates that returned nil)", n, ok)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDB_Update_panic(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	err := db.Update(ctx, func(tx phivault.StoreTx) error {
		if err := put(ctx, tx, "p1", 1); err != nil {
			return err
		}
		panic("bug")
	})
	if err == nil {
		t.Fatalf("Update(panic) = nil, want error")
	}
	// The writer survives, and the panicking update left nothing behind.
	if err := db.Update(ctx, func(tx phivault.StoreTx) error { return put(ctx, tx, "p2", 1) }); err != nil {
		t.Fatalf("Update() after panic = %v", err)
	}
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.Current(ctx, "Patient", "p1"); !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("Current(p1) = %v, want ErrNotFound", err)
		}
		_, err := tx.Current(ctx, "Patient", "p2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFindQuery_plan checks that searches use indexes: a token search
// drives from the tokens primary key and never scans current or versions.
func TestFindQuery_plan(t *testing.T) {
	db := MustOpen(t)
	conn, err := sql.Open("sqlite", "file:"+db.Path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tok := storetest.Tok
	for _, tt := range []struct {
		name string
		give phivault.ResourceFilter
		want string // the first step of the plan that reads a table
	}{
		{"one token", phivault.ResourceFilter{Types: []string{"Observation"}, Tokens: [][]phivault.Token{{tok("a")}}},
			"SEARCH tokens USING PRIMARY KEY"},
		{"and of ors", phivault.ResourceFilter{Tokens: [][]phivault.Token{{tok("a"), tok("b")}, {tok("c")}}, Limit: 10},
			"SEARCH tokens USING PRIMARY KEY"},
		{"type", phivault.ResourceFilter{Types: []string{"Observation"}, Limit: 10},
			"current_type_last_updated (type=? AND deleted=?)"},
		{"compartment", phivault.ResourceFilter{Compartments: []string{"p1"}, Types: []string{"Observation"}},
			"current_compartment (compartment=? AND type=? AND deleted=?)"},
		{"compartments", phivault.ResourceFilter{Compartments: []string{"p1", "p2"}, Types: []string{"Observation"}},
			"current_compartment (compartment=? AND type=? AND deleted=?)"},
		{"compartments and token", phivault.ResourceFilter{Compartments: []string{"p1", "p2"}, Types: []string{"Observation"}, Tokens: [][]phivault.Token{{tok("a")}}},
			"SEARCH tokens USING PRIMARY KEY"},
	} {
		for _, sel := range sqlite.FindSelects {
			q, args := sqlite.FindQuery(tt.give, min(len(tt.give.Tokens)-1, 0), sel)
			if len(tt.give.Tokens) == 0 {
				q, args = sqlite.FindQuery(tt.give, -1, sel)
			}
			rows, err := conn.Query("EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatalf("%s: EXPLAIN = %v", tt.name, err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			for _, step := range plan {
				// "SCAN x USING INDEX" walks an index in order, which is fine for
				// a type without other filters; a bare "SCAN c" or "SCAN v" is a
				// full table scan. d (the driving tokens) and p (the page, at
				// most Limit rows) are subqueries, not tables.
				if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, "INDEX") && !strings.HasPrefix(step, "SCAN d") && !strings.HasPrefix(step, "SCAN p") {
					t.Errorf("%s (select %s): plan has a full scan: %q", tt.name, sel, plan)
				}
			}
			var first string
			for _, step := range plan {
				if strings.HasPrefix(step, "SEARCH ") {
					first = step
					break
				}
			}
			if !strings.Contains(first, tt.want) && (sel != sqlite.FindSelects[2] || len(tt.give.Compartments) > 0) {
				t.Errorf("%s (select %s): plan %q starts with %q, want %q", tt.name, sel, plan, first, tt.want)
			}
			t.Logf("%s (select %s): %q", tt.name, sel, plan)
		}
	}
}

// TestDB_Update_groupCommit holds the writer in one update until the others
// are all queued, then checks that the queued ones share one COMMIT.
func TestDB_Update_groupCommit(t *testing.T) {
	const n = 64
	db := MustOpen(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(ctx, func(tx phivault.StoreTx) error {
			close(started)
			<-release
			return put(ctx, tx, "first", 1)
		})
	}()
	<-started // the writer is busy with the first update
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- db.Update(ctx, func(tx phivault.StoreTx) error {
				return put(ctx, tx, fmt.Sprintf("p%02d", i), 1)
			})
		}()
	}
	for db.Queued() < n {
		time.Sleep(time.Millisecond)
	}
	before := db.Commits()
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("Update(first) = %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Update() = %v", err)
		}
	}
	// "first" was alone in its batch when it started; the n updates that
	// queued behind it share the next COMMIT (MaxBatch is 256).
	if got := db.Commits() - before; got != 2 {
		t.Errorf("commits for %d updates = %d, want 2 (one for first, one for the %d queued)", n+1, got, n)
	}
}

// TestDB_Open_fileMode checks that the database and its WAL are owner-only.
func TestDB_Open_fileMode(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	if err := db.Update(ctx, func(tx phivault.StoreTx) error { return put(ctx, tx, "mode", 1) }); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		st, err := os.Stat(db.Path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s mode = %v, want 0600", filepath.Base(db.Path+suffix), mode)
		}
	}
}

// TestDB_Update_groupFailure queues updates behind a busy writer, one of
// which fails after writing: the batch is rolled back and the others run
// again, so every other update commits and the failed one leaves nothing.
func TestDB_Update_groupFailure(t *testing.T) {
	const n = 10
	db := MustOpen(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(ctx, func(tx phivault.StoreTx) error {
			close(started)
			<-release
			return put(ctx, tx, "first", 1)
		})
	}()
	<-started
	errBoom := errors.New("boom")
	errs := make([]chan error, n)
	for i := range n {
		errs[i] = make(chan error, 1)
		go func() {
			errs[i] <- db.Update(ctx, func(tx phivault.StoreTx) error {
				if err := put(ctx, tx, fmt.Sprintf("g%02d", i), 1); err != nil {
					return err
				}
				if i == n/2 {
					return errBoom
				}
				return nil
			})
		}()
		for db.Queued() < i+1 { // queue them in order, so the failure is mid-batch
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("Update(first) = %v", err)
	}
	for i := range n {
		err := <-errs[i]
		if i == n/2 && !errors.Is(err, errBoom) {
			t.Errorf("Update(g%02d) = %v, want boom", i, err)
		} else if i != n/2 && err != nil {
			t.Errorf("Update(g%02d) = %v", i, err)
		}
	}
	err := db.View(ctx, func(tx phivault.StoreTx) error {
		for i := range n {
			_, err := tx.Current(ctx, "Patient", fmt.Sprintf("g%02d", i))
			if i == n/2 && phivault.ErrorCode(err) != phivault.ENOTFOUND {
				t.Errorf("failed update's write is visible: %v", err)
			} else if i != n/2 && err != nil {
				t.Errorf("Current(g%02d) = %v", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDB_WALLimit checks that the WAL stays near WALLimit while the database
// is open: a reader holding an old snapshot lets it grow, and once the
// reader is gone the next commits cut it back, without a clean stop.
func TestDB_WALLimit(t *testing.T) {
	const limit = 1 << 20
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := sqlite.New(path)
	db.ReadConns = 2
	db.WALLimit = limit
	ctx := context.Background()
	if err := db.Open(ctx); err != nil {
		t.Fatalf("Open() = %v", err)
	}
	defer db.Close()
	body := make([]byte, 64<<10)
	n := 0
	write := func() int64 {
		t.Helper()
		n++
		err := db.Update(ctx, func(tx phivault.StoreTx) error {
			return tx.Put(ctx, &phivault.SealedResource{Type: "Binary", ID: fmt.Sprint("b", n), Version: 1,
				LastUpdated: t0, KeyID: "shared", Ciphertext: body}, nil)
		})
		if err != nil {
			t.Fatalf("Update() = %v", err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	// A reader holds its snapshot while 100 writes (6.4 MiB) go by.
	reading, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- db.View(ctx, func(tx phivault.StoreTx) error {
			_, err := tx.Current(ctx, "Patient", "none")
			if phivault.ErrorCode(err) != phivault.ENOTFOUND {
				return err
			}
			close(reading)
			<-release
			return nil
		})
	}()
	<-reading
	var held int64
	for range 100 {
		held = write()
	}
	if held < 4*limit {
		t.Fatalf("WAL with a reader holding a snapshot = %d bytes, want it to grow past %d (test setup)", held, 4*limit)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("View() = %v", err)
	}

	// Once the reader is gone, the WAL is cut back within a few commits
	// (the writer retries after the WAL grows by a quarter of the limit,
	// and a passive checkpoint may be in the way of one try) and stays
	// bounded: allow a few commits' worth above the limit.
	var most int64
	for i := range 40 {
		size := write()
		if i >= 8 {
			most = max(most, size)
		}
	}
	if want := int64(limit + 8*len(body)); most > want {
		t.Errorf("WAL after the reader left = %d bytes at most, want <= %d (WALLimit %d)", most, want, limit)
	}
}

// TestDB_CacheMiB checks that the page caches of all connections together
// stay within CacheMiB, as the pragma each connection is opened with says.
func TestDB_CacheMiB(t *testing.T) {
	for _, tt := range []struct{ cacheMiB, readConns int }{{0, 4}, {128, 4}, {64, 2}, {16, 8}} {
		db := sqlite.New(filepath.Join(t.TempDir(), "phivault.db"))
		db.CacheMiB, db.ReadConns = tt.cacheMiB, tt.readConns
		total := tt.cacheMiB
		if total == 0 {
			total = sqlite.DefaultCacheMiB
		}
		if got := db.CacheKiBPerConn() * (tt.readConns + 2); got > total<<10 {
			t.Errorf("CacheMiB %d, %d readers: %d KiB over all connections, want <= %d", tt.cacheMiB, tt.readConns, got, total<<10)
		}
	}
}

// TestDB_Shred_erasePending checks that a shred whose WAL truncation a
// reader on an older snapshot keeps busy is committed and says so
// (ErrErasePending, not a failure), that the WAL then still holds the
// destroyed wrapped key, and that EraseShredded (the server's start)
// erases it from every file once the reader has gone.
func TestDB_Shred_erasePending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := sqlite.New(path)
	db.ReadConns = 1
	db.BusyTimeout = 20 // the truncation waits 5 of these for the reader
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wrapped := []byte("wrapped-key-of-p1-0123456789abcdef0123456789abcdef")
	err := db.Update(ctx, func(tx phivault.StoreTx) error {
		_, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/p1", KEKID: "file:1", Wrapped: wrapped, Created: t0, Bound: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// A reader on another connection holds a snapshot from before the shred.
	rtx, err := mustRaw(t, path).BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRowContext(ctx, `SELECT count(*) FROM keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", t0) })
	if !errors.Is(err, phivault.ErrErasePending) {
		t.Fatalf("Shred with a reader holding the WAL = %v, want ErrErasePending", err)
	}
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		if _, ok, err := tx.Shredded(ctx, "p1"); err != nil || !ok {
			return fmt.Errorf("Shredded(p1) = %v, %v; want true", ok, err)
		}
		if _, err := tx.Key(ctx, "patient/p1"); !errors.Is(err, phivault.ErrNotFound) {
			return fmt.Errorf("Key(patient/p1) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("the shred did not stand: %v", err)
	}
	if wal, err := os.ReadFile(path + "-wal"); err != nil || !bytes.Contains(wal, wrapped) {
		t.Fatalf("the WAL does not hold the wrapped key while the erasure is pending (%v); the test shows nothing", err)
	}

	if err := rtx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.EraseShredded(ctx); err != nil {
		t.Fatalf("EraseShredded() = %v", err)
	}
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if i := bytes.Index(b, wrapped); i >= 0 {
			t.Errorf("%s still holds the shredded wrapped key at byte %d", filepath.Base(name), i)
		}
	}
}
