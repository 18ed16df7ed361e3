-- The audit index: one row per audit entry and patient compartment it
-- touched (patient '' if none), so that the trail can be read by patient,
-- actor, action and time. It is derived from audit_entries (the views fill
-- it from the entries and check every entry they return again), holds ids
-- only, and is not covered by the Merkle tree.
CREATE TABLE audit_index (
	idx     INTEGER NOT NULL,
	patient TEXT    NOT NULL,
	actor   TEXT    NOT NULL,
	action  TEXT    NOT NULL,
	time    INTEGER NOT NULL, -- Unix nanoseconds, UTC
	PRIMARY KEY (idx, patient)
) WITHOUT ROWID;
CREATE INDEX audit_index_patient ON audit_index (patient, idx);
CREATE INDEX audit_index_actor ON audit_index (actor, idx);
