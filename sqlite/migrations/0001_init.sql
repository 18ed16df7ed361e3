-- versions holds every version of every resource: ids, times and ciphertext.
-- It is an ordinary rowid table rather than WITHOUT ROWID: its rows carry
-- ciphertexts of one to several KiB, far above the ~200 bytes (1/20 of a
-- page) for which SQLite recommends WITHOUT ROWID, and large rows in a
-- clustered index make every lookup page through overflow chains.
-- last_updated is UTC unix microseconds. ciphertext is NULL for tombstones.
CREATE TABLE versions (
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,
	compartment  TEXT    NOT NULL DEFAULT '',
	deleted      INTEGER NOT NULL DEFAULT 0,
	key_id       TEXT    NOT NULL DEFAULT '',
	ciphertext   BLOB,
	PRIMARY KEY (type, id, version)
);

-- Type-level history (_history on a type, optionally _since).
CREATE INDEX versions_type_last_updated ON versions (type, last_updated);

-- current points at the newest version of each resource. Its rows are small,
-- so it is clustered on (type, id). Search runs on current and joins versions
-- by primary key only for the page it returns.
CREATE TABLE current (
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,
	compartment  TEXT    NOT NULL DEFAULT '',
	deleted      INTEGER NOT NULL DEFAULT 0,
	tokens       BLOB    NOT NULL DEFAULT x'', -- the resource's tokens, 16 bytes each
	PRIMARY KEY (type, id),
	FOREIGN KEY (type, id, version) REFERENCES versions (type, id, version)
) WITHOUT ROWID;

-- Search and count filter on deleted = 0 and order by last_updated; with
-- deleted in the index both are served from the index alone.
CREATE INDEX current_type_last_updated ON current (type, deleted, last_updated, id);
CREATE INDEX current_compartment ON current (compartment, type, deleted, last_updated);

-- tokens holds the blind-index tokens of current, non-deleted versions.
-- Lookups go by token first (search). Replacement deletes the tokens listed
-- in current.tokens by primary key: a second index on (type, id) would add
-- a random-order B-tree that every commit rewrites, for no search benefit.
CREATE TABLE tokens (
	token BLOB NOT NULL,
	type  TEXT NOT NULL,
	id    TEXT NOT NULL,
	PRIMARY KEY (token, type, id)
) WITHOUT ROWID;

-- keys holds data-encryption keys, wrapped by a key-encryption key.
CREATE TABLE keys (
	id      TEXT    NOT NULL PRIMARY KEY,
	kek_id  TEXT    NOT NULL,
	wrapped BLOB    NOT NULL,
	created INTEGER NOT NULL
);
