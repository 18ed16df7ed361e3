-- erased says that the key table was rewritten (VACUUM FULL) after the
-- shred, so the destroyed keys' old bytes are gone from its file. A shred
-- inserts false; DB.eraseKeys sets true once a rewrite that started after
-- the shred's commit is done, and DB.EraseShredded (at start) rewrites the
-- table while any row is false. Shreds made before this column existed
-- start as false: the first start after the upgrade rewrites the table once.
ALTER TABLE shredded ADD COLUMN erased boolean NOT NULL DEFAULT false;
