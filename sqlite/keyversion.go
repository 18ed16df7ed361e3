package sqlite

import (
	"context"

	"github.com/phivault/phivault"
)

// KeyVersions returns the stored versions of key id, oldest first. The
// single writer means no other transaction can delete them meanwhile.
func (t *Tx) KeyVersions(ctx context.Context, id string) ([]*phivault.WrappedKey, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	// id and "id#n" sort in [id, id+"$") by bytes ('$' follows '#');
	// anything else in that range is filtered out below.
	st, err := t.stmt(qctx, `SELECT id, kek_id, wrapped, created, bound FROM keys WHERE id >= ? AND id < ?`)
	if err != nil {
		return nil, t.fail(ctx, "key versions", err)
	}
	rows, err := st.QueryContext(qctx, id, id+"$")
	if err != nil {
		return nil, t.fail(ctx, "key versions", err)
	}
	defer rows.Close()
	var out []*phivault.WrappedKey
	for rows.Next() {
		var k phivault.WrappedKey
		var created int64
		if err := rows.Scan(&k.ID, &k.KEKID, &k.Wrapped, &created, &k.Bound); err != nil {
			return nil, t.fail(ctx, "key versions", err)
		}
		k.Created = fromMicros(created)
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(ctx, "key versions", err)
	}
	return phivault.KeyVersionsOf(id, out), nil
}

// DeleteKey deletes key id if no version is sealed under it.
func (t *Tx) DeleteKey(ctx context.Context, id string) error {
	if !t.write {
		return errReadOnly
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	var used bool
	if err := t.queryRow(qctx, "delete key", `SELECT EXISTS (SELECT 1 FROM versions WHERE key_id = ?)`, []any{id}, &used); err != nil {
		return err
	}
	if used {
		return phivault.Errorf(phivault.ECONFLICT, "Stored versions are still sealed under this key.")
	}
	res, err := t.conn.ExecContext(qctx, `DELETE FROM keys WHERE id = ?`, id)
	if err != nil {
		return t.fail(ctx, "delete key", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.fail(ctx, "delete key", err)
	} else if n == 0 {
		return phivault.ErrNotFound
	}
	return nil
}

// SealedUnder returns up to limit versions sealed under keyID and their
// total.
func (t *Tx) SealedUnder(ctx context.Context, keyID string, limit int) ([]*phivault.SealedResource, int, error) {
	if keyID == "" {
		return nil, 0, phivault.Errorf(phivault.EINVALID, "SealedUnder needs a key id.")
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	var total int
	if err := t.queryRow(qctx, "sealed under", `SELECT count(*) FROM versions WHERE key_id = ?`, []any{keyID}, &total); err != nil {
		return nil, 0, err
	}
	rs, err := t.query(qctx, "sealed under", `SELECT `+versionCols+` FROM versions v WHERE v.key_id = ?`+limitOffset(limit, 0), []any{keyID})
	if err != nil {
		return nil, 0, err
	}
	return rs, total, nil
}

// Reseal replaces a version's key id and ciphertext if it is still sealed
// under old.KeyID.
func (t *Tx) Reseal(ctx context.Context, old, r *phivault.SealedResource) error {
	if !t.write {
		return errReadOnly
	}
	if err := checkReseal(old, r); err != nil {
		return err
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	res, err := t.conn.ExecContext(qctx, `UPDATE versions SET key_id = ?, ciphertext = ?
		WHERE type = ? AND id = ? AND version = ? AND key_id = ? AND deleted = 0
			AND last_updated = ? AND compartment = ?`,
		r.KeyID, r.Ciphertext, old.Type, old.ID, old.Version, old.KeyID, old.LastUpdated.UnixMicro(), old.Compartment)
	if err != nil {
		return t.fail(ctx, "reseal", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.fail(ctx, "reseal", err)
	} else if n == 1 {
		return nil
	}
	if _, err := t.Version(ctx, old.Type, old.ID, old.Version); err != nil {
		return err
	}
	return phivault.Errorf(phivault.ECONFLICT, "The version changed since it was read.")
}

// checkReseal rejects a reseal that would change anything but the key and
// ciphertext of a live version.
func checkReseal(old, r *phivault.SealedResource) error {
	if old == nil || r == nil || old.Deleted || r.Deleted || old.KeyID == "" || r.KeyID == "" || len(r.Ciphertext) == 0 ||
		r.Type != old.Type || r.ID != old.ID || r.Version != old.Version ||
		!r.LastUpdated.Equal(old.LastUpdated) || r.Compartment != old.Compartment {
		return phivault.Errorf(phivault.EINVALID, "A resealed version keeps its identity and needs a key and a ciphertext.")
	}
	return nil
}
