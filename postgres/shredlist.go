package postgres

import (
	"context"
	"time"
)

// Shreds returns every shredded patient compartment and the time of its
// shred, for a backup to record as tombstones (backup.RecordShreds): a
// point-in-time recovery to before a shred brings the patient's key back,
// and the tombstones say whom to shred again.
func (db *DB) Shreds(ctx context.Context) (map[string]time.Time, error) {
	rows, err := db.pool.Query(ctx, `SELECT compartment, at FROM shredded`)
	if err != nil {
		return nil, mapErr("read shreds", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var c string
		var at time.Time
		if err := rows.Scan(&c, &at); err != nil {
			return nil, mapErr("read shreds", err)
		}
		out[c] = at.UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("read shreds", err)
	}
	return out, nil
}
