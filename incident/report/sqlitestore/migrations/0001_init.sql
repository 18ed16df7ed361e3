CREATE TABLE reports (
	id        TEXT PRIMARY KEY,
	version   INTEGER NOT NULL,
	submitted INTEGER NOT NULL, -- Unix nanoseconds, for the list order
	data      BLOB NOT NULL     -- JSON of report.Report (description and an anonymous reporter sealed)
);
CREATE INDEX reports_submitted ON reports (submitted DESC, id);
