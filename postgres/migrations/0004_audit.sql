-- The audit trail: entries (canonical JSON holding ids only, never PHI) by
-- index, and the stored hashes of their RFC 6962 Merkle tree by
-- tlog.StoredHashIndex. Both are append-only: the trigger refuses UPDATE,
-- DELETE and TRUNCATE, and the tree and its signed checkpoints reveal any
-- change made by someone who drops it.
CREATE TABLE audit_entries (
	idx  bigint PRIMARY KEY,
	data bytea  NOT NULL
);
CREATE TABLE audit_hashes (
	idx  bigint PRIMARY KEY,
	hash bytea  NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit tables are append-only';
END;
$$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hashes_append_only BEFORE UPDATE OR DELETE ON audit_hashes
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hashes_no_truncate BEFORE TRUNCATE ON audit_hashes
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
