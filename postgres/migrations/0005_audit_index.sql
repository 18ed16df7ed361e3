-- The audit index: one row per audit entry and patient compartment it
-- touched (patient '' if none), so that the trail can be read by patient,
-- actor, action and time. It is derived from audit_entries (the views fill
-- it from the entries and check every entry they return again), holds ids
-- only, and is not covered by the Merkle tree.
CREATE TABLE audit_index (
	idx     bigint NOT NULL,
	patient text   NOT NULL,
	actor   text   NOT NULL,
	action  text   NOT NULL,
	time    bigint NOT NULL, -- Unix nanoseconds, UTC
	PRIMARY KEY (idx, patient)
);
CREATE INDEX audit_index_patient ON audit_index (patient, idx);
CREATE INDEX audit_index_actor ON audit_index (actor, idx);
