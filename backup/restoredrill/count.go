package restoredrill

import (
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the driver the vault's own store uses
)

// countRecords runs PRAGMA quick_check on every restored database and
// counts the rows of each of its tables. The files are opened read-only
// and immutable: nothing writes them before the server starts.
func (d *drill) countRecords() error {
	for i := range d.rep.Databases {
		db := &d.rep.Databases[i]
		tables, err := countTables(filepath.Join(d.data, db.Name))
		if err != nil {
			return fmt.Errorf("%s: %w", db.Name, err)
		}
		db.Tables = tables
		for _, n := range tables {
			db.Rows += n
		}
	}
	return nil
}

func countTables(file string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: file}).EscapedPath()+"?mode=ro&immutable=1")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA quick_check").Scan(&check); err != nil {
		return nil, fmt.Errorf("quick_check: %v", err)
	}
	if check != "ok" {
		return nil, fmt.Errorf("quick_check: %.200s", check)
	}
	rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %v", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %v", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %v", err)
	}
	tables := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := db.QueryRow(`SELECT count(*) FROM "` + strings.ReplaceAll(n, `"`, `""`) + `"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("count %s: %v", n, err)
		}
		tables[n] = c
	}
	return tables, nil
}
