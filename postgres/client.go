package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault"
)

var _ phivault.ClientStore = (*DB)(nil)

const clientCols = `id, name, kind, redirect_uris, jwks, scopes, status, created, version`

func clientArgs(c *phivault.Client) []any {
	return []any{c.ID, c.Name, c.Kind, strs(c.RedirectURIs), c.JWKS, strs(c.Scopes), c.Status, optTime(c.Created), c.Version}
}

// scanClient reads a row of clientCols. Like the sqlite store it returns
// RedirectURIs and Scopes as empty slices when empty.
func scanClient(row pgx.Row) (*phivault.Client, error) {
	var (
		c       phivault.Client
		created *time.Time
	)
	if err := row.Scan(&c.ID, &c.Name, &c.Kind, &c.RedirectURIs, &c.JWKS, &c.Scopes, &c.Status, &created, &c.Version); err != nil {
		return nil, err
	}
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{}
	}
	if c.Scopes == nil {
		c.Scopes = []string{}
	}
	c.Created = timeOrZero(created)
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
	_, err := db.pool.Exec(ctx, `INSERT INTO clients (`+clientCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, clientArgs(&n)...)
	if isUniqueViolation(err) {
		return phivault.Errorf(phivault.ECONFLICT, "The client id is taken.")
	} else if err != nil {
		return mapErr("create client", ctxErr(ctx, err))
	}
	c.Version = 1
	return nil
}

// ClientByID returns a client, or phivault.ErrNotFound.
func (db *DB) ClientByID(ctx context.Context, id string) (*phivault.Client, error) {
	c, err := scanClient(db.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, mapErr("client", ctxErr(ctx, err))
	}
	return c, nil
}

// Clients returns every client, ordered by id.
func (db *DB) Clients(ctx context.Context) ([]*phivault.Client, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+clientCols+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, mapErr("clients", ctxErr(ctx, err))
	}
	defer rows.Close()
	var list []*phivault.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, mapErr("clients", err)
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("clients", ctxErr(ctx, err))
	}
	return list, nil
}

// updateClientQuery is updateAccountQuery for clients.
const updateClientQuery = `
WITH upd AS (
	UPDATE clients SET name = $2, kind = $3, redirect_uris = $4, jwks = $5, scopes = $6, status = $7,
		created = $8, version = $9
	WHERE id = $1 AND version = $10
	RETURNING 1
)
SELECT EXISTS (SELECT FROM upd), EXISTS (SELECT FROM clients WHERE id = $1)`

// UpdateClient replaces client c.ID if its stored version is c.Version-1.
// Otherwise it returns an *phivault.Error with code ECONFLICT, or
// phivault.ErrNotFound, and writes nothing.
func (db *DB) UpdateClient(ctx context.Context, c *phivault.Client) error {
	var updated, exists bool
	err := db.pool.QueryRow(ctx, updateClientQuery, append(clientArgs(c), c.Version-1)...).Scan(&updated, &exists)
	switch {
	case err != nil:
		return mapErr("update client", ctxErr(ctx, err))
	case updated:
		return nil
	case !exists:
		return phivault.ErrNotFound
	}
	return phivault.Errorf(phivault.ECONFLICT, "The client changed since it was read.")
}
