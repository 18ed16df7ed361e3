-- shredded lists crypto-shredded patient compartments: their key is gone,
-- their versions stay as ciphertext nobody can open, and no write may
-- create a new key for them.
--
-- A shred also sets current.deleted on the compartment's rows, which takes
-- them out of search (whose indexes skip deleted rows) without touching the
-- versions that Current, Version and History read.
CREATE TABLE shredded (
	compartment text COLLATE "C" PRIMARY KEY,
	at          timestamptz      NOT NULL
);
