-- 0007 extends accounts for patients, clearances, SCIM provisioning,
-- federated logins and WebAuthn, and adds registered OAuth clients, like
-- the sqlite store's migration of the same name.
ALTER TABLE accounts
	ADD COLUMN kind              text   NOT NULL DEFAULT '',
	ADD COLUMN organization      text   NOT NULL DEFAULT '',
	ADD COLUMN patient_id        text   NOT NULL DEFAULT '',
	ADD COLUMN clearances        text[] NOT NULL DEFAULT '{}',
	ADD COLUMN external_id       text   NOT NULL DEFAULT '',
	ADD COLUMN federated_subject text COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN webauthn          bytea;
-- "" means no federated login, which many accounts share.
CREATE UNIQUE INDEX accounts_federated_subject ON accounts (federated_subject) WHERE federated_subject <> '';

CREATE TABLE clients (
	id            text COLLATE "C" PRIMARY KEY,
	name          text             NOT NULL,
	kind          text             NOT NULL,
	redirect_uris text[]           NOT NULL,
	jwks          bytea,
	scopes        text[]           NOT NULL,
	status        text             NOT NULL,
	created       timestamptz,
	version       bigint           NOT NULL
);
