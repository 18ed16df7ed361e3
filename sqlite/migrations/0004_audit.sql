-- The audit trail: entries (canonical JSON holding ids only, never PHI) by
-- index, and the stored hashes of their RFC 6962 Merkle tree by
-- tlog.StoredHashIndex. Both are append-only: the triggers refuse UPDATE and
-- DELETE, and the tree and its signed checkpoints reveal any change made by
-- someone who drops them.
CREATE TABLE audit_entries (
	idx  INTEGER PRIMARY KEY,
	data BLOB    NOT NULL
);
CREATE TABLE audit_hashes (
	idx  INTEGER PRIMARY KEY,
	hash BLOB    NOT NULL
);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit hashes are append-only'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit hashes are append-only'); END;
