package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/phivault/phivault"
)

// ReadShredded returns the compartments shredded in the store file at
// path, with the time of each shred. It opens the file query-only on its
// own connection, so it may run beside a server that has the store open
// (it sees the last committed state), and changes nothing.
func ReadShredded(ctx context.Context, path string) (map[string]time.Time, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout))
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: read shreds: %v", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT compartment, at FROM shredded`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read shreds: %v", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var c string
		var at int64
		if err := rows.Scan(&c, &at); err != nil {
			return nil, fmt.Errorf("sqlite: read shreds: %v", err)
		}
		out[c] = fromMicros(at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read shreds: %v", err)
	}
	return out, nil
}

// ApplyShreds opens the store file at path, which no other process may
// have open (a restored folder before it is served), and shreds each
// compartment of shreds that it has not shredded yet, at its recorded
// time, as [Tx.Shred] does: the key and tokens go, the resources answer
// EGONE, and the destroyed key's bytes are erased from the file. It
// returns the compartments it shredded.
func ApplyShreds(ctx context.Context, path string, shreds map[string]time.Time) ([]string, error) {
	db, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	var done []string
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		done = done[:0]
		for c, at := range shreds {
			_, ok, err := tx.Shredded(ctx, c)
			if err != nil {
				return err
			} else if ok {
				continue
			}
			if err := tx.Shred(ctx, c, at); err != nil {
				return err
			}
			done = append(done, c)
		}
		return nil
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: apply shreds: %w", err)
	}
	return done, nil
}
