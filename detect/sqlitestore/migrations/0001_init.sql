-- The detector's state. Everything here holds ids and blind-index tokens
-- only, never PHI: alerts, ingest records and directory entries are JSON
-- of the detect package's types.

-- The committed cursor and the last engine snapshot: one row.
CREATE TABLE state (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	trail       INTEGER NOT NULL, -- Cursor.Trail: next trail index to process
	ingest      INTEGER NOT NULL, -- Cursor.Ingest: last ingest sequence processed
	snapshot    BLOB,             -- Engine.MarshalState, or NULL
	snap_trail  INTEGER NOT NULL,
	snap_ingest INTEGER NOT NULL
);
INSERT INTO state (id, trail, ingest, snapshot, snap_trail, snap_ingest) VALUES (1, 0, 0, NULL, 0, 0);

-- Alerts by id, with the columns AlertFilter selects on. Detection time is
-- Unix seconds and nanoseconds, so any time.Time orders exactly.
CREATE TABLE alerts (
	id          TEXT    PRIMARY KEY,
	rule        TEXT    NOT NULL,
	user        TEXT    NOT NULL,
	state       TEXT    NOT NULL,
	score       INTEGER NOT NULL,
	detected_s  INTEGER NOT NULL,
	detected_ns INTEGER NOT NULL,
	data        BLOB    NOT NULL
) WITHOUT ROWID;
CREATE INDEX alerts_detected ON alerts (detected_s DESC, detected_ns DESC, id);
CREATE INDEX alerts_rule ON alerts (rule, detected_s DESC, detected_ns DESC, id);
CREATE INDEX alerts_user ON alerts (user, detected_s DESC, detected_ns DESC, id);
CREATE INDEX alerts_state ON alerts (state, detected_s DESC, detected_ns DESC, id);
CREATE INDEX alerts_score ON alerts (score);

-- The patients of each alert, for the patient filter.
CREATE TABLE alert_patients (
	patient TEXT NOT NULL,
	alert   TEXT NOT NULL,
	PRIMARY KEY (patient, alert)
) WITHOUT ROWID;
CREATE INDEX alert_patients_alert ON alert_patients (alert);

-- Triage decisions, oldest first. Notes inside data are sealed.
CREATE TABLE triages (
	seq   INTEGER PRIMARY KEY,
	alert TEXT NOT NULL,
	data  BLOB NOT NULL
);
CREATE INDEX triages_alert ON triages (alert, seq);

-- The ingest stream, numbered from 1.
CREATE TABLE ingest (
	seq  INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);

-- Directory entries from the ingest stream as of the cursor, in the order
-- they were last stored (seq).
CREATE TABLE dir_users (
	seq  INTEGER PRIMARY KEY,
	id   TEXT NOT NULL UNIQUE,
	data BLOB NOT NULL
);
CREATE TABLE dir_patients (
	seq  INTEGER PRIMARY KEY,
	id   TEXT NOT NULL UNIQUE,
	data BLOB NOT NULL
);
CREATE TABLE dir_relationships (
	seq  INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE dir_honeytokens (
	seq     INTEGER PRIMARY KEY,
	patient TEXT NOT NULL UNIQUE
);
