-- Identifiers use the "C" collation so that ordering by id is by bytes,
-- the same on every server and the same as the sqlite store.

-- versions holds every version of every resource: ids, times and ciphertext
-- (NULL for a tombstone). Its primary key is what makes a lost race on the
-- same version fail instead of overwriting.
CREATE TABLE versions (
	type         text COLLATE "C" NOT NULL,
	id           text COLLATE "C" NOT NULL,
	version      bigint           NOT NULL,
	last_updated timestamptz      NOT NULL,
	compartment  text COLLATE "C" NOT NULL DEFAULT '',
	deleted      boolean          NOT NULL DEFAULT false,
	key_id       text COLLATE "C" NOT NULL DEFAULT '',
	ciphertext   bytea,
	PRIMARY KEY (type, id, version)
);

-- Type-level history (_history on a type, optionally _since).
CREATE INDEX versions_type_last_updated ON versions (type, last_updated);

-- current points at the newest version of each resource; search runs on it
-- and joins versions by primary key only for the rows it returns.
CREATE TABLE current (
	type         text COLLATE "C" NOT NULL,
	id           text COLLATE "C" NOT NULL,
	version      bigint           NOT NULL,
	last_updated timestamptz      NOT NULL,
	compartment  text COLLATE "C" NOT NULL DEFAULT '',
	deleted      boolean          NOT NULL DEFAULT false,
	PRIMARY KEY (type, id)
);

-- Search only ever wants live resources, so its indexes skip tombstones.
CREATE INDEX current_type_last_updated ON current (type, last_updated, id) WHERE NOT deleted;
CREATE INDEX current_compartment ON current (compartment, type, last_updated) WHERE NOT deleted;

-- tokens holds the blind-index tokens of current, non-deleted versions.
-- Lookups go by token first (search); replacement goes by (type, id).
CREATE TABLE tokens (
	token bytea            NOT NULL,
	type  text COLLATE "C" NOT NULL,
	id    text COLLATE "C" NOT NULL,
	PRIMARY KEY (token, type, id)
);

CREATE INDEX tokens_resource ON tokens (type, id);

-- keys holds data-encryption keys, wrapped by a key-encryption key.
CREATE TABLE keys (
	id      text COLLATE "C" PRIMARY KEY,
	kek_id  text             NOT NULL,
	wrapped bytea            NOT NULL,
	created timestamptz      NOT NULL
);
