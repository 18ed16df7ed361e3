CREATE TABLE incidents (
	id      TEXT PRIMARY KEY,
	version INTEGER NOT NULL,
	opened  INTEGER NOT NULL, -- Unix nanoseconds, for the list order
	data    BLOB NOT NULL     -- JSON of incident.Incident (title sealed)
);
CREATE INDEX incidents_opened ON incidents (opened DESC, id);

CREATE TABLE incident_events (
	incident TEXT NOT NULL REFERENCES incidents (id),
	seq      INTEGER NOT NULL,
	data     BLOB NOT NULL, -- JSON of incident.Event (note sealed)
	PRIMARY KEY (incident, seq)
);
