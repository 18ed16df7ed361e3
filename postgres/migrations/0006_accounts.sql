-- accounts holds the people who log in, like the sqlite store's table.
-- password_hash and totp_secret are credentials (the envelope package
-- seals totp_secret before it gets here). Times are NULL for none.
CREATE TABLE accounts (
	id                   text COLLATE "C" PRIMARY KEY,
	username             text COLLATE "C" NOT NULL UNIQUE,
	roles                text[]           NOT NULL,
	department           text             NOT NULL,
	practitioner_id      text             NOT NULL,
	training_valid_until timestamptz,
	status               text             NOT NULL,
	password_hash        text             NOT NULL,
	totp_secret          bytea,
	totp_last_step       bigint           NOT NULL,
	failed_logins        bigint           NOT NULL,
	last_failure         timestamptz,
	locked_until         timestamptz,
	created              timestamptz,
	version              bigint           NOT NULL
);
