CREATE TABLE things (
	id      TEXT PRIMARY KEY,
	version INTEGER NOT NULL,
	made    INTEGER NOT NULL,
	data    BLOB NOT NULL
);
