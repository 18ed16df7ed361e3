package postgres

import (
	"context"

	"github.com/phivault/phivault"
)

// ReindexPending returns the types awaiting a reindex, in name order.
func (t *Tx) ReindexPending(ctx context.Context) ([]string, error) {
	rows, err := t.tx.Query(ctx, `SELECT type FROM reindex ORDER BY type`)
	if err != nil {
		return nil, mapErr("reindex pending", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			return nil, mapErr("reindex pending", err)
		}
		out = append(out, typ)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("reindex pending", err)
	}
	return out, nil
}

// retokenQuery replaces the tokens of a current, live version by
// difference, as putQuery does, in one statement: cur is the row if the
// version is still current and not deleted (a tombstone or a shredded
// compartment's resource), and del and tok change nothing without it.
const retokenQuery = `
WITH cur AS (
	SELECT FROM current WHERE type = $1 AND id = $2 AND version = $3 AND NOT deleted
), del AS (
	DELETE FROM tokens WHERE type = $1 AND id = $2 AND EXISTS (SELECT FROM cur) AND NOT (token = ANY ($4::bytea[]))
), tok AS (
	INSERT INTO tokens (token, type, id)
	SELECT DISTINCT t, $1, $2 FROM unnest($4::bytea[]) AS t WHERE EXISTS (SELECT FROM cur)
	ON CONFLICT DO NOTHING
)
SELECT count(*) FROM cur`

// Retoken replaces the tokens of the current version if it is still
// version and live.
//
// The first Retoken of a transaction locks the tokens table against every
// other writer (Put, Shred, Retoken) until the transaction ends; reads go
// on. A Put replaces tokens by difference with what its statement's
// snapshot shows, so tokens inserted by a Retoken that commits after that
// snapshot was taken, but before the Put's own commit, would escape the
// Put's delete and stay behind as stale tokens of the older version. A
// statement takes its locks before its snapshot: with the lock, a Put
// either committed before (and Retoken's version compare sees it) or
// starts after Retoken's commit (and its snapshot sees Retoken's tokens).
func (t *Tx) Retoken(ctx context.Context, typ, id string, version int64, tokens []phivault.Token) error {
	if !t.write {
		return errReadOnly
	}
	if !t.retoken {
		if _, err := t.tx.Exec(ctx, `LOCK TABLE tokens IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return mapErr("retoken", err)
		}
		t.retoken = true
	}
	var n int
	if err := t.tx.QueryRow(ctx, retokenQuery, typ, id, version, tokenBytes(tokens)).Scan(&n); err != nil {
		return mapErr("retoken", err)
	}
	if n == 1 {
		return nil
	}
	var exists bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM current WHERE type = $1 AND id = $2)`, typ, id).Scan(&exists); err != nil {
		return mapErr("retoken", err)
	}
	if !exists {
		return phivault.ErrNotFound
	}
	return phivault.Errorf(phivault.ECONFLICT, "Version %d is not the current, live version.", version)
}

// ReindexDone takes typ off the pending reindexes.
func (t *Tx) ReindexDone(ctx context.Context, typ string) error {
	if !t.write {
		return errReadOnly
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM reindex WHERE type = $1`, typ); err != nil {
		return mapErr("reindex done", err)
	}
	return nil
}
