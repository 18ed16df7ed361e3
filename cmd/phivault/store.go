package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/postgres"
	"github.com/phivault/phivault/sqlite"
)

// Store kinds, as written to the data folder's store file.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// appStore is the database a vault keeps its records, accounts, clients and
// audit trail in: SQLite in the data folder, or PostgreSQL.
type appStore interface {
	phivault.Store
	phivault.AccountStore
	phivault.ClientStore
	auditlog.Storage
	auditlog.IndexStorage
	// EraseShredded finishes the erasure of keys destroyed by shreds
	// whose erasure is pending (see phivault.ErrErasePending).
	EraseShredded(ctx context.Context) error
	Close() error
}

var (
	_ appStore = (*sqlite.DB)(nil)
	_ appStore = (*postgres.DB)(nil)
)

// StoreConfig chooses the database. The URL is a secret (it may carry a
// password), so it comes from PHIVAULT_STORE or PHIVAULT_STORE_FILE; the
// -store flag takes a URL only without a password, since other users can
// read flags in the process list.
type StoreConfig struct {
	// URL is "" or "sqlite" for the data folder's SQLite database, or a
	// postgres:// (postgresql://) URL. A database on another machine must
	// be reached over TLS that verifies the certificate and host name
	// (sslmode=verify-full).
	URL string
	// Schema holds phivault's tables in PostgreSQL; created if missing.
	// Default "" uses the server's search_path (normally "public").
	Schema string
	// SQLiteCacheMiB bounds the page cache of all SQLite connections
	// together, in MiB. Default 0 uses sqlite.DefaultCacheMiB.
	SQLiteCacheMiB int
	// SQLiteShredEraseWait bounds the wait of a shred's WAL erasure for
	// readers (sqlite.DB.ShredEraseWaitMillis); 0 is the store's default.
	// Set short while the backup stream holds a read transaction.
	SQLiteShredEraseWait time.Duration

	flagURL string // -store, before resolve
}

// kind returns storeSQLite or storePostgres.
func (c StoreConfig) kind() string {
	if c.URL == "" || c.URL == storeSQLite {
		return storeSQLite
	}
	return storePostgres
}

// LogValue names the store without its password, user or query parameters.
func (c StoreConfig) LogValue() slog.Value {
	if c.kind() == storeSQLite {
		return slog.GroupValue(slog.String("kind", storeSQLite), slog.Int("cache_mib", c.SQLiteCacheMiB))
	}
	attrs := []slog.Attr{slog.String("kind", storePostgres)}
	if u, err := url.Parse(c.URL); err == nil {
		attrs = append(attrs, slog.String("host", u.Host), slog.String("database", strings.TrimPrefix(u.Path, "/")),
			slog.String("sslmode", u.Query().Get("sslmode")))
	}
	return slog.GroupValue(append(attrs, slog.String("schema", c.Schema))...)
}

func (c *StoreConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.flagURL, "store", "", `database: "sqlite" (default: phivault.db in the data folder) or a postgres:// URL without a password (env PHIVAULT_STORE or PHIVAULT_STORE_FILE, which may carry one)`)
	fs.StringVar(&c.Schema, "postgres-schema", os.Getenv("PHIVAULT_POSTGRES_SCHEMA"), "PostgreSQL schema for phivault's tables, created if missing (default: the server's search_path; env PHIVAULT_POSTGRES_SCHEMA)")
	fs.IntVar(&c.SQLiteCacheMiB, "sqlite-cache-mib", envInt("PHIVAULT_SQLITE_CACHE_MIB", sqlite.DefaultCacheMiB), "SQLite page cache of all connections together, in MiB (env PHIVAULT_SQLITE_CACHE_MIB)")
}

// resolve sets URL from -store, or else from PHIVAULT_STORE or
// PHIVAULT_STORE_FILE, and checks it.
func (c *StoreConfig) resolve() error {
	if c.flagURL != "" {
		c.URL = c.flagURL
		if u, err := url.Parse(c.URL); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return errorWithHint("-store carries a password, which other users can read in the process list",
					"put the URL in a file named by PHIVAULT_STORE_FILE (or use PGPASSFILE)")
			}
		}
	} else {
		v, err := secretFromEnv("PHIVAULT_STORE")
		if err != nil {
			return err
		}
		c.URL = strings.TrimSpace(v)
	}
	if c.kind() == storePostgres && !strings.HasPrefix(c.URL, "postgres://") && !strings.HasPrefix(c.URL, "postgresql://") {
		return errorWithHint("the store must be \"sqlite\" or a postgres:// URL", "-store postgres://phivault@db.example.org/phivault?sslmode=verify-full")
	}
	return nil
}

// envInt returns the environment variable name as an int, or def when it
// is unset or not a number.
func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err != nil {
		return def
	}
	return n
}

// storeFile names the file in a data folder that records which kind of
// database holds its records, so that a folder made for PostgreSQL is never
// served from an empty SQLite file by mistake.
func (d dataDir) storeFile() string { return d.path("store") }

// storeKind returns the kind recorded by init; folders from before the
// store setting are SQLite.
func (d dataDir) storeKind() (string, error) {
	b, err := os.ReadFile(d.storeFile())
	if errors.Is(err, fs.ErrNotExist) {
		return storeSQLite, nil
	} else if err != nil {
		return "", fmt.Errorf("read store kind: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// openStore opens the database of data folder d as c says, after checking
// that it is the kind the folder was made with.
func openStore(ctx context.Context, d dataDir, c StoreConfig) (appStore, error) {
	want, err := d.storeKind()
	if err != nil {
		return nil, err
	}
	if got := c.kind(); got != want {
		hint := "set PHIVAULT_STORE_FILE to a file holding the postgres:// URL, or pass -store"
		if want == storeSQLite {
			hint = "unset PHIVAULT_STORE and -store: this folder's records are in its SQLite file"
		}
		return nil, errorWithHint(fmt.Sprintf("%s keeps its records in %s, not %s", d, want, got), hint)
	}
	return openStoreKind(ctx, d, c)
}

// openStoreKind opens the database c names without checking the folder.
func openStoreKind(ctx context.Context, d dataDir, c StoreConfig) (appStore, error) {
	if c.kind() == storeSQLite {
		db := sqlite.New(d.database())
		if c.SQLiteCacheMiB > 0 {
			db.CacheMiB = c.SQLiteCacheMiB
		}
		db.ShredEraseWaitMillis = int(c.SQLiteShredEraseWait.Milliseconds())
		if err := db.Open(ctx); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		return db, nil
	}
	db := postgres.New(c.URL)
	db.Schema = c.Schema
	if err := db.Open(ctx); err != nil {
		if errors.Is(err, postgres.ErrPlaintext) {
			return nil, errorWithHint(err.Error(), "add sslmode=verify-full&sslrootcert=/path/to/ca.pem to the URL")
		}
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// initStore checks that the database c names can be opened and holds no
// vault yet, and records its kind in d.
func initStore(ctx context.Context, d dataDir, c StoreConfig) error {
	if c.kind() == storePostgres {
		db, err := openStoreKind(ctx, d, c)
		if err != nil {
			return err
		}
		n, err := db.AuditSize(ctx)
		db.Close()
		if err != nil {
			return fmt.Errorf("check the database: %w", err)
		}
		if n > 0 {
			return errorWithHint("the PostgreSQL database already holds a vault (its audit trail is not empty)",
				"use a fresh database, or another -postgres-schema")
		}
	}
	return writeFileAtomic(d.storeFile(), []byte(c.kind()+"\n"), 0o600)
}
