package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueryRowForTest runs a query on one of db's pooled connections.
func (db *DB) QueryRowForTest(ctx context.Context, sql string) pgx.Row {
	return db.pool.QueryRow(ctx, sql)
}

// SetEraseWait sets how long each try of the key table's rewrite after a
// shred waits for the table's lock.
func (db *DB) SetEraseWait(d time.Duration) { db.eraseWait = d }
