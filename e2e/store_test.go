package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

// postgresURLEnv names the test database; .ci/run sets it.
const postgresURLEnv = "PHIVAULT_TEST_POSTGRES_URL"

// pgStore is a fresh PostgreSQL schema for one vault, dropped when the test
// ends.
type pgStore struct {
	url, schema string
}

// forEachStore runs f as a subtest on SQLite (the data folder's file) and
// on PostgreSQL (pg non-nil: a fresh schema of the test database). The
// PostgreSQL subtest skips, saying how to enable it, when
// PHIVAULT_TEST_POSTGRES_URL is unset.
func forEachStore(t *testing.T, f func(t *testing.T, pg *pgStore)) {
	t.Run("sqlite", func(t *testing.T) { f(t, nil) })
	t.Run("postgres", func(t *testing.T) { f(t, newPGStore(t)) })
}

// newPGStore makes a schema name for one test and drops the schema at the
// end; phivault init creates it.
func newPGStore(t *testing.T) *pgStore {
	t.Helper()
	url := os.Getenv(postgresURLEnv)
	if url == "" {
		t.Skip("PostgreSQL end-to-end tests skipped: set " + postgresURLEnv +
			"=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them (.ci/run does)")
	}
	p := &pgStore{url: url, schema: fmt.Sprintf("phivault_e2e_%d_%016x", os.Getpid(), rand.Uint64())}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{p.schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", p.schema, err)
		}
	})
	return p
}

// env returns the settings that point phivault at the schema. The URL goes
// through a file, as an operator would pass one with a password.
func (p *pgStore) env(t *testing.T) []string {
	if p == nil {
		return nil
	}
	path := filepath.Join(t.TempDir(), "store-url")
	if err := os.WriteFile(path, []byte(p.url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"PHIVAULT_STORE_FILE=" + path, "PHIVAULT_POSTGRES_SCHEMA=" + p.schema}
}

// dump writes what someone who can read the database gets, a pg_dump of
// the schema, to a file in dir. Byte strings (the ciphertext columns) are
// dumped in escape format, so printable bytes stay as they are and a
// plaintext leak in them is found by a scan, not hidden as hex.
func (p *pgStore) dump(t *testing.T, dir, name string) {
	t.Helper()
	p.dumpSchema(t, p.schema, filepath.Join(dir, name))
}

func (p *pgStore) dumpSchema(t *testing.T, schema, out string) {
	t.Helper()
	cmd := exec.Command("pg_dump", "--dbname="+p.url, "--schema="+schema, "--file="+out)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c bytea_output=escape")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, b)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pg_dump of schema %s: %.1f MiB", schema, float64(fi.Size())/(1<<20))
}

// dumpControl stores secret between random bytes in a byte string column
// of a control schema and dumps that schema as dump does, to a file in
// dir: a positive control for scanning dumps.
func (p *pgStore) dumpControl(t *testing.T, dir string, secret []byte) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{p.schema + "_control"}.Sanitize()
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, p.url)
		if err == nil {
			c.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
			c.Close(ctx)
		}
	})
	noise := make([]byte, 64)
	for i := range noise {
		noise[i] = byte(rand.IntN(256))
	}
	value := append(append(append([]byte{}, noise...), secret...), noise...)
	for _, q := range []string{`CREATE SCHEMA ` + schema, `CREATE TABLE ` + schema + `.control (b bytea)`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO `+schema+`.control VALUES ($1)`, value); err != nil {
		t.Fatal(err)
	}
	p.dumpSchema(t, p.schema+"_control", filepath.Join(dir, "control.sql"))
}
