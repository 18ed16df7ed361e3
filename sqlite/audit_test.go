package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

func TestAuditStorage(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) auditlog.Storage { return MustOpen(t) })
}

func TestDB_AuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	if err := db.AppendAudit(ctx, 0, [][]byte{[]byte("e")}, []tlog.Hash{tlog.RecordHash([]byte("e"))}); err != nil {
		t.Fatal(err)
	}
	raw := mustRaw(t, path)
	for _, q := range []string{
		`UPDATE audit_entries SET data = x'00'`, `DELETE FROM audit_entries`,
		`UPDATE audit_hashes SET hash = x'00'`, `DELETE FROM audit_hashes`,
	} {
		if _, err := raw.Exec(q); err == nil {
			t.Errorf("%s = nil error, want the append-only trigger to refuse it", q)
		}
	}
}

func mustRaw(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	tb.Cleanup(func() { raw.Close() })
	return raw
}

// TestAudit_tamper edits, deletes, inserts, reorders and truncates audit
// entries directly in SQLite, with the stored hashes left alone (a careless
// attacker) or rebuilt to match (a careful one), and checks that Verify
// fails every time and, where it can, names the first changed index.
func TestAudit_tamper(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(db, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	const size = 40
	var checkpoints [][]byte
	for i := range size {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
		if i%9 == 8 {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkpoints = append(checkpoints, cp)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last, _ := l.Checkpoint(ctx) // the tree at its full size
	checkpoints = append(checkpoints, last)
	if _, err := auditlog.Verify(ctx, db, verifier, "", checkpoints); err != nil {
		t.Fatalf("Verify(untouched log) = %v", err)
	}

	orig, err := db.ReadAuditEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	raw := mustRaw(t, path)
	for _, trg := range []string{"audit_entries_no_update", "audit_entries_no_delete", "audit_hashes_no_update", "audit_hashes_no_delete"} {
		if _, err := raw.Exec("DROP TRIGGER " + trg); err != nil { // what an attacker with the file can do
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	const cases = 250
	for c := range cases {
		entries := append([][]byte(nil), orig...)
		i := rng.IntN(size)
		var kind string
		gap := false
		switch rng.IntN(5) {
		case 0:
			kind = "edit"
			d := append([]byte(nil), entries[i]...)
			d[rng.IntN(len(d))] ^= byte(1 + rng.IntN(255))
			entries[i] = d
		case 1:
			kind = "delete"
			entries = append(entries[:i:i], entries[i+1:]...)
			gap = rng.IntN(2) == 0 // leave the hole, or shift the rest down
		case 2:
			kind = "insert"
			forged, err := auditlog.Encode(storetest.Entry(1000 + c))
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries[:i:i], append([][]byte{forged}, entries[i:]...)...)
		case 3:
			kind = "reorder"
			j := rng.IntN(size - 1)
			if j >= i {
				j++
			}
			entries[i], entries[j] = entries[j], entries[i]
		case 4:
			kind = "truncate"
			entries = entries[:i]
		}
		rows := map[int64][]byte{}
		for k, d := range entries {
			if gap && k >= i {
				k++
			}
			rows[int64(k)] = d
		}
		wantIndex := int64(0)
		for wantIndex < size && string(rows[wantIndex]) == string(orig[wantIndex]) {
			wantIndex++
		}
		rebuild := !gap && rng.IntN(2) == 0
		name := fmt.Sprintf("case %d: %s at %d (hole %v, rebuilt hashes %v)", c, kind, i, gap, rebuild)
		if err := rewrite(raw, rows, rebuild); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err := auditlog.Verify(ctx, db, verifier, "", checkpoints)
		if err == nil {
			t.Errorf("%s: Verify() = nil, want an error", name)
			continue
		}
		var ve *auditlog.VerifyError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Verify() = %v, want a *VerifyError", name, err)
		} else if !rebuild && ve.Index != wantIndex {
			t.Errorf("%s: Verify() names index %d, want %d (%v)", name, ve.Index, wantIndex, err)
		}
	}
	rows := map[int64][]byte{}
	for k, d := range orig {
		rows[int64(k)] = d
	}
	if err := rewrite(raw, rows, false); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.Verify(ctx, db, verifier, "", checkpoints); err != nil {
		t.Fatalf("Verify(restored log) = %v", err)
	}
}

// rewrite replaces the audit tables' contents with rows. With rebuild, the
// stored hashes are recomputed for the new rows (which must have indexes
// 0, 1, …); otherwise they are the hashes of the untouched log.
func rewrite(raw *sql.DB, rows map[int64][]byte, rebuild bool) error {
	tx, err := raw.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS orig_hashes AS SELECT * FROM audit_hashes`,
		`DELETE FROM audit_entries`,
		`DELETE FROM audit_hashes`,
	} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	for idx, d := range rows {
		if _, err := tx.Exec(`INSERT INTO audit_entries (idx, data) VALUES (?, ?)`, idx, d); err != nil {
			return err
		}
	}
	if !rebuild {
		if _, err := tx.Exec(`INSERT INTO audit_hashes SELECT * FROM orig_hashes`); err != nil {
			return err
		}
		return tx.Commit()
	}
	m := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = m[x]
		}
		return out, nil
	})
	for n := int64(0); n < int64(len(rows)); n++ {
		hs, err := tlog.StoredHashes(n, rows[n], r)
		if err != nil {
			return err
		}
		first := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			m[first+int64(j)] = h
			if _, err := tx.Exec(`INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)`, first+int64(j), h[:]); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

var _ auditlog.Storage = (*sqlite.DB)(nil)
