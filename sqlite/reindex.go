package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/phivault/phivault"
)

// ReindexPending returns the types awaiting a reindex, in name order.
func (t *Tx) ReindexPending(ctx context.Context) ([]string, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	st, err := t.stmt(qctx, `SELECT type FROM reindex ORDER BY type`)
	if err != nil {
		return nil, t.fail(qctx, "reindex pending", err)
	}
	rows, err := st.QueryContext(qctx)
	if err != nil {
		return nil, t.fail(qctx, "reindex pending", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			return nil, t.fail(qctx, "reindex pending", err)
		}
		out = append(out, typ)
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(qctx, "reindex pending", err)
	}
	return out, nil
}

// Retoken replaces the tokens of the current version if it is still
// version and live. The single writer orders it with every Put.
func (t *Tx) Retoken(ctx context.Context, typ, id string, version int64, tokens []phivault.Token) error {
	if !t.write {
		return errReadOnly
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	var (
		cur, deleted int64
		old          []byte // the current tokens, 16 bytes each
	)
	st, err := t.stmt(qctx, `SELECT version, deleted, tokens FROM current WHERE type = ? AND id = ?`)
	if err == nil {
		err = st.QueryRowContext(qctx, typ, id).Scan(&cur, &deleted, &old)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return phivault.ErrNotFound
	} else if err != nil {
		return t.fail(qctx, "retoken", err)
	}
	if cur != version || deleted != 0 {
		// A tombstone, or a shredded compartment's resource (deleted =
		// erased), keeps no tokens.
		return phivault.Errorf(phivault.ECONFLICT, "Version %d is not the current, live version.", version)
	}
	list := make([]byte, 0, len(tokens)*len(phivault.Token{}))
	for _, tok := range tokens {
		list = append(list, tok[:]...)
	}
	st, err = t.stmt(qctx, `UPDATE current SET tokens = ? WHERE type = ? AND id = ?`)
	if err == nil {
		_, err = st.ExecContext(qctx, list, typ, id)
	}
	if err != nil {
		return t.fail(qctx, "retoken", err)
	}
	if err := t.deleteTokens(qctx, typ, id, old); err != nil {
		return err
	}
	return t.insertTokens(qctx, typ, id, tokens)
}

// ReindexDone takes typ off the pending reindexes.
func (t *Tx) ReindexDone(ctx context.Context, typ string) error {
	if !t.write {
		return errReadOnly
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	st, err := t.stmt(qctx, `DELETE FROM reindex WHERE type = ?`)
	if err == nil {
		_, err = st.ExecContext(qctx, typ)
	}
	if err != nil {
		return t.fail(qctx, "reindex done", err)
	}
	return nil
}
