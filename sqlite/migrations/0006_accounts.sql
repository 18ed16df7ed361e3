-- accounts holds the people who log in. password_hash and totp_secret are
-- credentials; times are Unix microseconds, 0 for none; roles is a JSON
-- array of strings.
CREATE TABLE accounts (
	id                   TEXT    PRIMARY KEY,
	username             TEXT    NOT NULL UNIQUE,
	roles                TEXT    NOT NULL,
	department           TEXT    NOT NULL,
	practitioner_id      TEXT    NOT NULL,
	training_valid_until INTEGER NOT NULL,
	status               TEXT    NOT NULL,
	password_hash        TEXT    NOT NULL,
	totp_secret          BLOB,
	totp_last_step       INTEGER NOT NULL,
	failed_logins        INTEGER NOT NULL,
	last_failure         INTEGER NOT NULL,
	locked_until         INTEGER NOT NULL,
	created              INTEGER NOT NULL,
	version              INTEGER NOT NULL
);
