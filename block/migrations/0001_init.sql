CREATE TABLE blocks (
	id      TEXT PRIMARY KEY,
	prefix  TEXT NOT NULL,    -- netip.Prefix, masked: 203.0.113.7/32, 10.1.0.0/16
	created INTEGER NOT NULL, -- Unix nanoseconds
	until   INTEGER NOT NULL, -- Unix nanoseconds; 0: until removed
	origin  TEXT NOT NULL     -- the incident action that made it, or "operator"
);
CREATE INDEX blocks_origin ON blocks (origin);
