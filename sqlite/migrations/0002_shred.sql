-- shredded lists crypto-shredded patient compartments: their key is gone,
-- their versions stay as ciphertext nobody can open, and no write may
-- create a new key for them. at is UTC unix microseconds.
--
-- A shred also sets current.deleted = 2 ("erased") on the compartment's
-- rows, which takes them out of search (search wants deleted = 0) without
-- touching the versions Current, Version and History read.
CREATE TABLE shredded (
	compartment TEXT    NOT NULL PRIMARY KEY,
	at          INTEGER NOT NULL
) WITHOUT ROWID;
