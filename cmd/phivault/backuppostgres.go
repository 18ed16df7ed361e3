package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/postgres"
)

// The PostgreSQL route (docs/backup.md, "PostgreSQL deployments"): on a
// data folder whose store is PostgreSQL, "phivault backup" backs up the
// folder (keyring, keys, TLS, checkpoint log, ...) and the database is
// backed up with PostgreSQL's tools (a base backup and a WAL archive);
// "phivault restore" restores the folder, and the database comes back by
// point-in-time recovery.

// postgresNote tells the operator of a PostgreSQL data folder that the
// records are not in the backup, and names the database and schema from
// the environment the server reads (PHIVAULT_STORE[_FILE],
// PHIVAULT_POSTGRES_SCHEMA), never the URL's user or password.
func postgresNote(w io.Writer) {
	where := "the PostgreSQL database the server uses (PHIVAULT_STORE)"
	c := StoreConfig{Schema: os.Getenv("PHIVAULT_POSTGRES_SCHEMA")}
	if err := c.resolve(); err == nil && c.kind() == storePostgres {
		if u, err := url.Parse(c.URL); err == nil {
			schema := c.Schema
			if schema == "" {
				schema = "the search_path's, normally public"
			}
			where = fmt.Sprintf("PostgreSQL database %q on %s, schema %q", strings.TrimPrefix(u.Path, "/"), u.Host, schema)
		}
	}
	fmt.Fprintf(w, "NOTE: this data folder keeps its records and audit trail in %s: this backup holds the folder only "+
		"(keyring, keys, TLS, checkpoint log). Back the database up with PostgreSQL's tools, a base backup and a WAL archive "+
		"(docs/backup.md, \"PostgreSQL deployments\"): a database without this folder's keyring is unreadable, "+
		"this folder without the database is empty.\n", where)
}

// postgresStoreShreds returns the shreds recorded in the PostgreSQL
// database of the data folder d, named by the environment the server
// reads (PHIVAULT_STORE[_FILE], PHIVAULT_POSTGRES_SCHEMA), for backups to
// record as tombstones.
func postgresStoreShreds(ctx context.Context, d dataDir) (map[string]time.Time, error) {
	c, err := postgresStore(d)
	if err != nil {
		return nil, err
	}
	db, err := openStore(ctx, d, c)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	pg, ok := db.(*postgres.DB)
	if !ok {
		return nil, fmt.Errorf("read shreds: the store of %s is not PostgreSQL", d)
	}
	return pg.Shreds(ctx)
}

// postgresStore returns the PostgreSQL store of the data folder d as the
// environment names it (PHIVAULT_STORE[_FILE], PHIVAULT_POSTGRES_SCHEMA):
// a backup of d reads the shreds from it.
func postgresStore(d dataDir) (StoreConfig, error) {
	c := StoreConfig{Schema: os.Getenv("PHIVAULT_POSTGRES_SCHEMA")}
	if err := c.resolve(); err != nil {
		return c, err
	}
	if c.kind() != storePostgres {
		return c, errorWithHint(string(d)+" keeps its records in PostgreSQL and PHIVAULT_STORE is unset: the backup records the shreds in the database",
			"set PHIVAULT_STORE_FILE (and PHIVAULT_POSTGRES_SCHEMA) as for serve")
	}
	return c, nil
}

// isPostgresFolder reports whether the (restored) data folder dir keeps
// its records in PostgreSQL.
func isPostgresFolder(dir string) bool {
	kind, err := dataDir(dir).storeKind()
	return err == nil && kind == storePostgres
}

// postgresShreds is backup.RestoreOptions.ApplyShreds for a data folder
// on PostgreSQL: the restore cannot reach the database, which comes back
// by point-in-time recovery, so it keeps the tombstones' patient ids in
// *ids for the operator to shred again (phivault keys shred) once the
// database is recovered.
func postgresShreds(ids *[]string) func(ctx context.Context, dir string, shreds []backup.Shred) error {
	return func(ctx context.Context, dir string, shreds []backup.Shred) error {
		for _, s := range shreds {
			*ids = append(*ids, s.Compartment)
		}
		slices.Sort(*ids)
		return nil
	}
}

// printPostgresRestore tells the operator what restoring a PostgreSQL
// data folder leaves to do: recover the database, and shred again the
// patients the target's tombstones name.
func printPostgresRestore(w io.Writer, data string, shreds []string) {
	fmt.Fprintf(w, "NOTE: %s keeps its records and audit trail in PostgreSQL: recover the database with point-in-time recovery "+
		"(docs/backup.md, \"PostgreSQL deployments\") before serving it. The audit trail was not checked against the witness file "+
		"(it is in the database); start the server with a witness file no newer than the recovery target.\n", data)
	if len(shreds) == 0 {
		return
	}
	fmt.Fprintf(w, "SHREDS: the backup folder records %d shredded patients; after the recovery, shred again those shredded after the recovery target "+
		"(with the server stopped: phivault keys shred -data %s --patient ID; a patient already shredded keeps its shred time, one created after the recovery target is not found):\n", len(shreds), data)
	for _, id := range shreds {
		fmt.Fprintf(w, "  Patient/%s\n", id)
	}
}
