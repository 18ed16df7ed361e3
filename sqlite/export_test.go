package sqlite

// FindQuery exposes the search query builder to the black-box tests, which
// check its query plan.
var FindQuery = findQuery

// FindSelects are what FindQuery may select: rows, a count, compartments.
var FindSelects = []string{selectRows, selectCount, selectCompartments}

// Queued returns how many Update calls wait for the writer.
func (db *DB) Queued() int { return len(db.reqs) }

// Commits returns how many batches the writer has committed.
func (db *DB) Commits() int64 { return db.commits.Load() }

// CacheKiBPerConn returns the page cache each connection gets, in KiB.
func (db *DB) CacheKiBPerConn() int { return db.cacheKiBPerConn() }
