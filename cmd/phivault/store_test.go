package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

// parseStore parses args with a StoreConfig's flags and resolves it.
func parseStore(t *testing.T, args ...string) (StoreConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c StoreConfig
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c, c.resolve()
}

func TestStoreConfig_resolve(t *testing.T) {
	t.Setenv("PHIVAULT_STORE", "")
	os.Unsetenv("PHIVAULT_STORE")
	t.Run("Default", func(t *testing.T) {
		c, err := parseStore(t)
		if err != nil || c.kind() != storeSQLite {
			t.Errorf("no setting: kind %q, %v; want sqlite", c.kind(), err)
		}
	})
	t.Run("PasswordInFlag", func(t *testing.T) {
		_, err := parseStore(t, "-store", "postgres://u:s3cret@db.example.org/x?sslmode=verify-full")
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("-store with a password = %v, want an error without the password", err)
		}
	})
	t.Run("File", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "url")
		url := "postgres://u:s3cret@db.example.org/x?sslmode=verify-full"
		if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PHIVAULT_STORE_FILE", path)
		c, err := parseStore(t)
		if err != nil || c.URL != url {
			t.Errorf("PHIVAULT_STORE_FILE: URL %q, %v; want the file's URL", c.URL, err)
		}
	})
	t.Run("NotAURL", func(t *testing.T) {
		if _, err := parseStore(t, "-store", "mysql://x"); err == nil {
			t.Error("-store mysql://x = nil, want error")
		}
	})
}

// TestStoreConfig_LogValue checks that a logged store configuration (as
// serve logs its Config) never shows the password or user.
func TestStoreConfig_LogValue(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	cfg := Config{Data: "d", Store: StoreConfig{URL: "postgres://alice:s3cret@db.example.org:5432/phi?sslmode=verify-full&password=s3cret2", Schema: "v1"}}
	logger.Info("serving", "config", cfg)
	out := buf.String()
	for _, secret := range []string{"s3cret", "alice"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line %s reveals %q", out, secret)
		}
	}
	if !strings.Contains(out, `"kind":"postgres"`) || !strings.Contains(out, "db.example.org") {
		t.Errorf("log line %s does not say which database", out)
	}
}

// TestOpenStore_kindMismatch checks that a data folder made for PostgreSQL
// is not served from a new, empty SQLite file when the URL is forgotten.
func TestOpenStore_kindMismatch(t *testing.T) {
	d := dataDir(t.TempDir())
	if err := writeFileAtomic(d.storeFile(), []byte("postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(context.Background(), d, StoreConfig{}); err == nil {
		t.Fatal("openStore(postgres folder, no URL) = nil, want error")
	}
	if _, err := os.Stat(d.database()); err == nil {
		t.Error("openStore created an SQLite file in a PostgreSQL data folder")
	}
}

// TestInitStore_postgresInUse checks that init refuses a PostgreSQL schema
// that already holds a vault, so two vaults never share tables.
func TestInitStore_postgresInUse(t *testing.T) {
	ctx := context.Background()
	sc := testPostgres(t)
	first := dataDir(t.TempDir())
	if err := initStore(ctx, first, sc); err != nil {
		t.Fatalf("initStore(fresh schema) = %v", err)
	}
	if k, err := first.storeKind(); err != nil || k != storePostgres {
		t.Fatalf("store kind after init = %q, %v; want postgres", k, err)
	}
	db, err := openStore(ctx, first, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, 0, [][]byte{[]byte("entry")}, []tlog.Hash{tlog.RecordHash([]byte("entry"))}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := initStore(ctx, dataDir(t.TempDir()), sc); err == nil {
		t.Error("initStore(schema holding a vault) = nil, want error")
	}
}

// testPostgres returns the store settings of a fresh schema of the test
// database, dropped when the test ends (init creates it). It skips the
// test, saying how to enable it, when PHIVAULT_TEST_POSTGRES_URL is unset.
func testPostgres(t *testing.T) StoreConfig {
	t.Helper()
	url := os.Getenv("PHIVAULT_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("set PHIVAULT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run (.ci/run does)")
	}
	sc := StoreConfig{URL: url, Schema: fmt.Sprintf("phivault_cmd_test_%d_%016x", os.Getpid(), rand.Uint64())}
	t.Cleanup(func() {
		pgExec(t, sc, `DROP SCHEMA IF EXISTS `+pgx.Identifier{sc.Schema}.Sanitize()+` CASCADE`)
	})
	return sc
}

// setStoreEnv points every command the test runs at store sc, as an
// operator does: the URL in a file named by PHIVAULT_STORE_FILE, the
// schema in PHIVAULT_POSTGRES_SCHEMA.
func setStoreEnv(t *testing.T, sc StoreConfig) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store-url")
	if err := os.WriteFile(path, []byte(sc.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PHIVAULT_STORE", "")
	os.Unsetenv("PHIVAULT_STORE")
	t.Setenv("PHIVAULT_STORE_FILE", path)
	t.Setenv("PHIVAULT_POSTGRES_SCHEMA", sc.Schema)
}

// pgExec runs query in sc's schema, as someone with access to the database
// can, and returns the number of rows it affected.
func pgExec(t *testing.T, sc StoreConfig, query string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(sc.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = sc.Schema
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return tag.RowsAffected()
}
