package postgres_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/postgres"
)

const urlEnv = "PHIVAULT_TEST_POSTGRES_URL"

// testURL returns the test database URL or skips the test.
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv(urlEnv)
	if url == "" {
		tb.Skip("PostgreSQL tests skipped: set " + urlEnv +
			"=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them")
	}
	return url
}

// MustOpen opens a DB in a new schema of its own, dropped when the test ends.
func MustOpen(tb testing.TB) *postgres.DB {
	tb.Helper()
	url := testURL(tb)
	db := postgres.New(url)
	db.Schema = fmt.Sprintf("phivault_test_%d_%016x", os.Getpid(), rand.Uint64())
	db.MaxConns = 8
	if err := db.Open(context.Background()); err != nil {
		tb.Fatalf("Open() = %v", err)
	}
	tb.Cleanup(func() {
		db.Close()
		dropSchema(tb, url, db.Schema)
	})
	return db
}

func dropSchema(tb testing.TB, url, schema string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Errorf("connect to drop schema: %v", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
	}
}

func TestStore(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) phivault.Store { return MustOpen(t) })
}

func BenchmarkStore(b *testing.B) {
	testURL(b)
	storetest.Bench(b, func(b *testing.B) phivault.Store { return MustOpen(b) })
}

// TestDB_Reopen checks that a second Open of the same schema applies no
// migration twice and sees committed data.
func TestDB_Reopen(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	err := db.Update(ctx, func(tx phivault.StoreTx) error {
		return tx.Put(ctx, &phivault.SealedResource{Type: "Patient", ID: "p1", Version: 1,
			LastUpdated: time.Date(2024, 3, 1, 0, 0, 0, 1000, time.UTC), Ciphertext: []byte("x")}, nil)
	})
	if err != nil {
		t.Fatalf("Update() = %v", err)
	}
	db2 := postgres.New(db.URL)
	db2.Schema = db.Schema
	if err := db2.Open(ctx); err != nil {
		t.Fatalf("Open() again = %v", err)
	}
	defer db2.Close()
	err = db2.View(ctx, func(tx phivault.StoreTx) error {
		_, err := tx.Current(ctx, "Patient", "p1")
		return err
	})
	if err != nil {
		t.Fatalf("Current() after reopen = %v", err)
	}
}

func TestOpen_badURL(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:s3cret@[bad")
	if err == nil {
		t.Fatal("Open(bad URL) = nil, want error")
	}
	if got := err.Error(); contains(got, "s3cret") {
		t.Errorf("Open(bad URL) error %q reveals the password", got)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestDB_readsInsideUpdates runs more concurrent Updates than the pool has
// connections, each reading through a View while its transaction is open,
// as the access layer's write guard does. Every one must finish: Updates
// leave a connection for reads.
func TestDB_readsInsideUpdates(t *testing.T) {
	db := MustOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			errs <- db.Update(ctx, func(phivault.StoreTx) error {
				return db.View(ctx, func(tx phivault.StoreTx) error {
					_, err := tx.Count(ctx, phivault.ResourceFilter{Types: []string{"Patient"}})
					return err
				})
			})
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatalf("Update with a View inside: %v", err)
		}
	}
}

// TestOpen_plaintext checks that Open refuses, before connecting, a URL that
// would reach a database on another machine without TLS that verifies the
// certificate and the host name, and that its error names neither the
// password nor the host, and names the fix.
func TestOpen_plaintext(t *testing.T) {
	ca := writeCA(t)
	for _, url := range []string{
		"postgres://u:s3cret@db.example.org/x?sslmode=disable",
		"postgres://u:s3cret@db.example.org/x?sslmode=prefer",
		"postgres://u:s3cret@db.example.org/x?sslmode=require",
		"postgres://u:s3cret@db.example.org/x",
		"postgres://u:s3cret@127.0.0.1,db.example.org/x?sslmode=disable",
		// verify-ca checks the chain but not the host name.
		"postgres://u:s3cret@db.example.org/x?sslmode=verify-ca",
		"postgres://u:s3cret@db.example.org/x?sslmode=verify-ca&sslrootcert=" + ca,
		"postgres://u:s3cret@db.example.org/x?sslmode=require&sslrootcert=" + ca,
		"postgres://u:s3cret@127.0.0.1,db.example.org/x?sslmode=verify-ca&sslrootcert=" + ca,
	} {
		_, err := postgres.Open(context.Background(), url)
		if !errors.Is(err, postgres.ErrPlaintext) {
			t.Errorf("Open(%q) = %v, want ErrPlaintext", url, err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "example") {
			t.Errorf("Open(%q) error %q reveals the password or host", url, err)
		}
		if !strings.Contains(err.Error(), "sslmode=verify-full") {
			t.Errorf("Open(%q) error %q does not name sslmode=verify-full", url, err)
		}
	}

	// verify-full passes the check; the connection then fails (nothing
	// listens at that address), but not with ErrPlaintext.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	url := "postgres://u@192.0.2.1/x?connect_timeout=1&sslmode=verify-full&sslrootcert=" + ca
	if _, err := postgres.Open(ctx, url); err == nil || errors.Is(err, postgres.ErrPlaintext) {
		t.Errorf("Open(%q) = %v, want a connection error", url, err)
	}
}

// writeCA writes a self-signed CA certificate to a file and returns its
// path, for URLs with sslrootcert.
func writeCA(tb testing.TB) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "phivault test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestOpen_tls checks that a URL asking for TLS reaches the test database
// over TLS when the server offers it, and that a loopback URL without TLS is
// accepted (the test database's own URL).
func TestOpen_tls(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var ssl string
	err = conn.QueryRow(ctx, "SHOW ssl").Scan(&ssl)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ssl != "on" {
		t.Skip("the test PostgreSQL server has ssl off; enable it to test TLS to the database")
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslmode", "require")
	u.RawQuery = q.Encode()
	db := postgres.New(u.String())
	db.Schema = fmt.Sprintf("phivault_test_%d_%016x", os.Getpid(), rand.Uint64())
	if err := db.Open(ctx); err != nil {
		t.Fatalf("Open(sslmode=require) = %v", err)
	}
	defer dropSchema(t, url, db.Schema)
	defer db.Close()
	var usesTLS bool
	if err := db.QueryRowForTest(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&usesTLS); err != nil {
		t.Fatal(err)
	}
	if !usesTLS {
		t.Error("connection with sslmode=require is not encrypted")
	}
}

// TestDB_ShredErasesKey acts as someone who reads PostgreSQL's data files
// (here through pageinspect's get_raw_page, which returns a block of the
// table's file as it is on disk): after a shred, the shredded compartment's
// wrapped key is in no block of the key table, while the others are. The
// victim is the row stored last, whose bytes a plain VACUUM leaves in its
// page's free space. The test runs in a database of its own: a transaction
// of another test in the same database could still see the deleted row,
// and PostgreSQL keeps a row for as long as any snapshot of its database
// may see it (see docs/crypto.md).
func TestDB_ShredErasesKey(t *testing.T) {
	ctx := context.Background()
	url := testURL(t)
	admin := func(sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	dbName := fmt.Sprintf("phivault_shred_%d_%016x", os.Getpid(), rand.Uint64())
	if err := admin(`CREATE DATABASE ` + pgx.Identifier{dbName}.Sanitize()); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := admin(`DROP DATABASE ` + pgx.Identifier{dbName}.Sanitize() + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + dbName
	dbURL := u.String()
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	wrapped := func(i int) []byte { return fmt.Appendf(nil, "wrapped-key-%04d-0123456789abcdef0123456789abcdef", i) }
	const n = 40
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		for i := range n {
			k := &phivault.WrappedKey{ID: fmt.Sprintf("patient/p%d", i), KEKID: "file:1", Wrapped: wrapped(i), Created: time.Now(), Bound: true}
			if _, err := tx.PutKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pageinspect`); err != nil {
		t.Fatalf("pageinspect (superuser and postgresql-contrib needed): %v", err)
	}
	onDisk := func() []byte {
		t.Helper()
		var blocks []byte
		rows, err := conn.Query(ctx, `SELECT get_raw_page('keys', b::int) FROM generate_series(0, pg_relation_size('keys') / current_setting('block_size')::int - 1) b`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, b...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return blocks
	}
	victim := n - 1
	if !bytes.Contains(onDisk(), wrapped(victim)) {
		t.Fatal("the key is not in the table's blocks before the shred; the search is broken")
	}
	if err := db.Update(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, fmt.Sprintf("p%d", victim), time.Now()) }); err != nil {
		t.Fatalf("Shred = %v", err)
	}
	blocks := onDisk()
	if i := bytes.Index(blocks, wrapped(victim)); i >= 0 {
		t.Errorf("the shredded wrapped key is still in the key table's file at byte %d", i)
	}
	for i := range victim {
		if !bytes.Contains(blocks, wrapped(i)) {
			t.Fatalf("key %d is gone from the table's blocks after another's shred", i)
		}
	}
}

// Searches get a plan for their own tokens every time: a generic plan of
// the token probes scans the whole tokens table. A URL may still say
// otherwise.
func TestOpen_customPlans(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	var mode string
	if err := db.QueryRowForTest(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "force_custom_plan" {
		t.Errorf("plan_cache_mode = %q, want force_custom_plan", mode)
	}
	sep := "?"
	if strings.Contains(testURL(t), "?") {
		sep = "&"
	}
	db2 := postgres.New(testURL(t) + sep + "plan_cache_mode=auto")
	db2.Schema = db.Schema
	if err := db2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.QueryRowForTest(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "auto" {
		t.Errorf("plan_cache_mode with the URL's own = %q, want auto", mode)
	}
}

// rawConn connects to the test database with db's schema as search_path.
func rawConn(tb testing.TB, db *postgres.DB) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(testURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = db.Schema
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// mustPutKey stores the wrapped key of compartment p.
func mustPutKey(tb testing.TB, db *postgres.DB, p string) {
	tb.Helper()
	ctx := context.Background()
	err := db.Update(ctx, func(tx phivault.StoreTx) error {
		_, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/" + p, KEKID: "file:1", Wrapped: []byte("wrapped-" + p), Created: time.Now(), Bound: true})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// erased reports whether the shred of compartment p is marked erased.
func erased(tb testing.TB, db *postgres.DB, p string) bool {
	tb.Helper()
	var ok bool
	if err := db.QueryRowForTest(context.Background(), `SELECT erased FROM shredded WHERE compartment = '`+p+`'`).Scan(&ok); err != nil {
		tb.Fatal(err)
	}
	return ok
}

// TestDB_Shred_erasePending checks the key table's rewrite after a shred:
// it is retried while other transactions hold the table's lock; if they
// hold it through every try, the shred is committed and says so
// (ErrErasePending, not a failure), stays marked pending, and
// EraseShredded (the server's start) finishes it.
func TestDB_Shred_erasePending(t *testing.T) {
	ctx := context.Background()
	shred := func(db *postgres.DB, p string) error {
		return db.Update(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, p, time.Now()) })
	}
	// lockKeys holds a lock on the key table that VACUUM FULL waits for,
	// until release is called.
	lockKeys := func(t *testing.T, db *postgres.DB) (release func()) {
		conn := rawConn(t, db)
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT count(*) FROM keys`); err != nil {
			t.Fatal(err)
		}
		return func() { tx.Rollback(ctx) }
	}

	// A transaction whose snapshot predates the shred can still see the
	// key's row, and VACUUM (FULL) would copy it into the new file: the
	// erasure waits for it, and stays pending while it lasts.
	t.Run("OldSnapshot", func(t *testing.T) {
		db := MustOpen(t)
		db.SetEraseWait(40 * time.Millisecond)
		mustPutKey(t, db, "p1")
		conn := rawConn(t, db)
		old, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Exec(ctx, `SELECT count(*) FROM versions`); err != nil { // takes the snapshot, not the key table's lock
			t.Fatal(err)
		}
		if err := shred(db, "p1"); !errors.Is(err, phivault.ErrErasePending) {
			t.Fatalf("Shred under an older snapshot = %v, want ErrErasePending", err)
		}
		if erased(t, db, "p1") {
			t.Fatal("the shred is marked erased while a snapshot that sees its key lasts")
		}
		var n int
		if err := old.QueryRow(ctx, `SELECT count(*) FROM keys WHERE id = 'patient/p1'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("the older snapshot sees %d rows of the key (%v): the test's premise", n, err)
		}
		old.Rollback(ctx)
		if err := db.EraseShredded(ctx); err != nil {
			t.Fatal(err)
		}
		if !erased(t, db, "p1") {
			t.Error("the shred is not marked erased once the old snapshot ended")
		}
	})

	t.Run("Retried", func(t *testing.T) {
		db := MustOpen(t)
		db.SetEraseWait(200 * time.Millisecond)
		mustPutKey(t, db, "p1")
		release := lockKeys(t, db)
		released := make(chan struct{})
		time.AfterFunc(300*time.Millisecond, func() { // during the second of five tries
			release()
			close(released)
		})
		err := shred(db, "p1")
		<-released // the connection is closed by the test's cleanup, after
		if err != nil {
			t.Fatalf("Shred with the key table locked for a while = %v, want nil (retried)", err)
		}
		if !erased(t, db, "p1") {
			t.Error("the shred is not marked erased after the rewrite")
		}
	})

	t.Run("Pending", func(t *testing.T) {
		db := MustOpen(t)
		db.SetEraseWait(20 * time.Millisecond)
		mustPutKey(t, db, "p1")
		release := lockKeys(t, db)
		err := shred(db, "p1")
		if !errors.Is(err, phivault.ErrErasePending) || !strings.Contains(err.Error(), "lock timeout") {
			t.Fatalf("Shred with the key table locked = %v, want ErrErasePending naming the lock timeout", err)
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
		if erased(t, db, "p1") {
			t.Error("a shred whose rewrite failed is marked erased")
		}
		release()
		if err := db.EraseShredded(ctx); err != nil {
			t.Fatalf("EraseShredded() = %v", err)
		}
		if !erased(t, db, "p1") {
			t.Error("EraseShredded did not mark the shred erased")
		}
	})
}

// TestDB_Shred_eraseNotOwner checks that a rewrite PostgreSQL skips (its
// role does not own the key table: VACUUM only warns) is reported as a
// pending erasure naming the cause, not as done.
func TestDB_Shred_eraseNotOwner(t *testing.T) {
	ctx := context.Background()
	owner := MustOpen(t)
	mustPutKey(t, owner, "p1")
	role := fmt.Sprintf("phivault_test_user_%d_%016x", os.Getpid(), rand.Uint64())
	admin := rawConn(t, owner)
	schema := pgx.Identifier{owner.Schema}.Sanitize()
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT USAGE, CREATE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := neturl.Parse(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.User(role)
	q := u.Query()
	q.Set("search_path", owner.Schema) // not db.Schema: creating it needs CREATE on the database
	u.RawQuery = q.Encode()
	db := postgres.New(u.String())
	if err := db.Open(ctx); err != nil {
		t.Fatalf("Open() as %s = %v", role, err)
	}
	defer db.Close()
	err = db.Update(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", time.Now()) })
	if !errors.Is(err, phivault.ErrErasePending) || !strings.Contains(err.Error(), "must own the table keys") {
		t.Fatalf("Shred by a role that does not own the key table = %v, want ErrErasePending naming the cause", err)
	}
	if erased(t, owner, "p1") {
		t.Error("a shred whose rewrite was skipped is marked erased")
	}
}
