package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/phivault/phivault"
)

var _ phivault.ClientStore = (*DB)(nil)

const clientCols = `id, name, kind, redirect_uris, jwks, scopes, status, created, version`

func clientArgs(c *phivault.Client) []any {
	return []any{c.ID, c.Name, c.Kind, jsonStrings(c.RedirectURIs), c.JWKS, jsonStrings(c.Scopes), c.Status, micros(c.Created), c.Version}
}

func scanClient(row interface{ Scan(...any) error }) (*phivault.Client, error) {
	var (
		c               phivault.Client
		redirect, scope string
		created         int64
	)
	if err := row.Scan(&c.ID, &c.Name, &c.Kind, &redirect, &c.JWKS, &scope, &c.Status, &created, &c.Version); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(redirect), &c.RedirectURIs); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scope), &c.Scopes); err != nil {
		return nil, err
	}
	c.Created = fromMicrosOrZero(created)
	return &c, nil
}

// CreateClient stores a new client and sets c.Version to 1. It returns an
// *phivault.Error with code ECONFLICT if the id is taken.
func (db *DB) CreateClient(ctx context.Context, c *phivault.Client) error {
	if c.ID == "" {
		return phivault.Errorf(phivault.EINVALID, "A client needs an id.")
	}
	n := *c
	n.Version = 1
	err := db.Update(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		qctx, err := t.begin(ctx)
		if err != nil {
			return err
		}
		_, err = t.conn.ExecContext(qctx, `INSERT INTO clients (`+clientCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, clientArgs(&n)...)
		if isUniqueViolation(err) {
			return phivault.Errorf(phivault.ECONFLICT, "The client id is taken.")
		} else if err != nil {
			return t.fail(ctx, "create client", err)
		}
		return nil
	})
	if err == nil {
		c.Version = 1
	}
	return err
}

// ClientByID returns a client, or phivault.ErrNotFound.
func (db *DB) ClientByID(ctx context.Context, id string) (*phivault.Client, error) {
	var c *phivault.Client
	err := db.View(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		var err error
		c, err = scanClient(t.conn.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return phivault.ErrNotFound
		} else if err != nil {
			return t.fail(ctx, "client", err)
		}
		return nil
	})
	return c, err
}

// Clients returns every client, ordered by id.
func (db *DB) Clients(ctx context.Context) ([]*phivault.Client, error) {
	var list []*phivault.Client
	err := db.View(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		rows, err := t.conn.QueryContext(ctx, `SELECT `+clientCols+` FROM clients ORDER BY id`)
		if err != nil {
			return t.fail(ctx, "clients", err)
		}
		defer rows.Close()
		list = list[:0]
		for rows.Next() {
			c, err := scanClient(rows)
			if err != nil {
				return t.fail(ctx, "clients", err)
			}
			list = append(list, c)
		}
		if err := rows.Err(); err != nil {
			return t.fail(ctx, "clients", err)
		}
		return nil
	})
	return list, err
}

// UpdateClient replaces client c.ID if its stored version is c.Version-1.
// Otherwise it returns an *phivault.Error with code ECONFLICT, or
// phivault.ErrNotFound, and writes nothing.
func (db *DB) UpdateClient(ctx context.Context, c *phivault.Client) error {
	args := clientArgs(c)
	return db.Update(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		qctx, err := t.begin(ctx)
		if err != nil {
			return err
		}
		res, err := t.conn.ExecContext(qctx, `UPDATE clients SET name = ?, kind = ?, redirect_uris = ?, jwks = ?,
			scopes = ?, status = ?, created = ?, version = ? WHERE id = ? AND version = ?`, append(args[1:], c.ID, c.Version-1)...)
		if err != nil {
			return t.fail(ctx, "update client", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return t.fail(ctx, "update client", err)
		} else if n == 1 {
			return nil
		}
		var exists bool
		if err := t.conn.QueryRowContext(qctx, `SELECT EXISTS (SELECT 1 FROM clients WHERE id = ?)`, c.ID).Scan(&exists); err != nil {
			return t.fail(ctx, "update client", err)
		}
		if !exists {
			return phivault.ErrNotFound
		}
		return phivault.Errorf(phivault.ECONFLICT, "The client changed since it was read.")
	})
}
