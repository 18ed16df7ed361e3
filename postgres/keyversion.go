package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault"
)

// KeyVersions returns the stored versions of key id, oldest first. In a
// read-write transaction it locks them FOR KEY SHARE, as a foreign key
// check would: DeleteKey and Shred then wait for this transaction, and see
// what it stored under them.
func (t *Tx) KeyVersions(ctx context.Context, id string) ([]*phivault.WrappedKey, error) {
	// id and "id#n" sort in [id, id+"$") by bytes (ids use the "C"
	// collation and '$' follows '#'); anything else there is filtered out.
	q := `SELECT id, kek_id, wrapped, created, bound FROM keys WHERE id >= $1 AND id < $2`
	if t.write {
		q += ` FOR KEY SHARE`
	}
	rows, err := t.tx.Query(ctx, q, id, id+"$")
	if err != nil {
		return nil, mapErr("key versions", err)
	}
	defer rows.Close()
	var out []*phivault.WrappedKey
	for rows.Next() {
		var k phivault.WrappedKey
		if err := rows.Scan(&k.ID, &k.KEKID, &k.Wrapped, &k.Created, &k.Bound); err != nil {
			return nil, mapErr("key versions", err)
		}
		k.Created = k.Created.UTC()
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("key versions", err)
	}
	return phivault.KeyVersionsOf(id, out), nil
}

// DeleteKey deletes key id if no version is sealed under it. It first locks
// the key row, which waits for every transaction that read it with
// KeyVersions (and may be storing a version under it) to end; under READ
// COMMITTED the check that follows then sees their versions.
func (t *Tx) DeleteKey(ctx context.Context, id string) error {
	if !t.write {
		return errReadOnly
	}
	var one int
	err := t.tx.QueryRow(ctx, `SELECT 1 FROM keys WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return phivault.ErrNotFound
	} else if err != nil {
		return mapErr("delete key", err)
	}
	var used bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM versions WHERE key_id = $1)`, id).Scan(&used); err != nil {
		return mapErr("delete key", err)
	}
	if used {
		return phivault.Errorf(phivault.ECONFLICT, "Stored versions are still sealed under this key.")
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM keys WHERE id = $1`, id); err != nil {
		return mapErr("delete key", err)
	}
	return nil
}

// SealedUnder returns up to limit versions sealed under keyID and their
// total.
func (t *Tx) SealedUnder(ctx context.Context, keyID string, limit int) ([]*phivault.SealedResource, int, error) {
	if keyID == "" {
		return nil, 0, phivault.Errorf(phivault.EINVALID, "SealedUnder needs a key id.")
	}
	var total int64
	if err := t.tx.QueryRow(ctx, `SELECT count(*) FROM versions WHERE key_id = $1`, keyID).Scan(&total); err != nil {
		return nil, 0, mapErr("sealed under", err)
	}
	rs, err := t.many(ctx, "sealed under", `SELECT `+versionCols+` FROM versions v WHERE v.key_id = $1`+limitOffset(limit, 0), keyID)
	if err != nil {
		return nil, 0, err
	}
	return rs, int(total), nil
}

// Reseal replaces a version's key id and ciphertext if it is still sealed
// under old.KeyID.
func (t *Tx) Reseal(ctx context.Context, old, r *phivault.SealedResource) error {
	if !t.write {
		return errReadOnly
	}
	if old == nil || r == nil || old.Deleted || r.Deleted || old.KeyID == "" || r.KeyID == "" || len(r.Ciphertext) == 0 ||
		r.Type != old.Type || r.ID != old.ID || r.Version != old.Version ||
		!r.LastUpdated.Equal(old.LastUpdated) || r.Compartment != old.Compartment {
		return phivault.Errorf(phivault.EINVALID, "A resealed version keeps its identity and needs a key and a ciphertext.")
	}
	tag, err := t.tx.Exec(ctx, `UPDATE versions SET key_id = $1, ciphertext = $2
		WHERE type = $3 AND id = $4 AND version = $5 AND key_id = $6 AND NOT deleted
			AND last_updated = $7 AND compartment = $8`,
		r.KeyID, r.Ciphertext, old.Type, old.ID, old.Version, old.KeyID,
		old.LastUpdated.UTC().Truncate(time.Microsecond), old.Compartment)
	if err != nil {
		return mapErr("reseal", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := t.Version(ctx, old.Type, old.ID, old.Version); err != nil {
		return err
	}
	return phivault.Errorf(phivault.ECONFLICT, "The version changed since it was read.")
}
