package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// QueryRowForTest runs a query on one of db's pooled connections.
func (db *DB) QueryRowForTest(ctx context.Context, sql string) pgx.Row {
	return db.pool.QueryRow(ctx, sql)
}
