-- 0007 extends accounts for patients, clearances, SCIM provisioning,
-- federated logins and WebAuthn, and adds registered OAuth clients.
-- clearances, redirect_uris and scopes are JSON arrays of strings.
ALTER TABLE accounts ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN organization TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN patient_id TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN clearances TEXT NOT NULL DEFAULT '[]';
ALTER TABLE accounts ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN federated_subject TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN webauthn BLOB;
CREATE UNIQUE INDEX accounts_federated_subject ON accounts (federated_subject) WHERE federated_subject != '';

CREATE TABLE clients (
	id            TEXT    PRIMARY KEY,
	name          TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	redirect_uris TEXT    NOT NULL,
	jwks          BLOB,
	scopes        TEXT    NOT NULL,
	status        TEXT    NOT NULL,
	created       INTEGER NOT NULL,
	version       INTEGER NOT NULL
);
