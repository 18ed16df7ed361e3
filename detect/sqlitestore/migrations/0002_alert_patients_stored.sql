-- What alert_patients holds of each alert: how many patients, and a
-- SHA-256 of their ids in order (each followed by a zero byte). An
-- alert's patients grow at their end as findings merge into it, so a
-- commit finding the stored ones a prefix of its own inserts only the
-- rest instead of rewriting them all. -1: not known (rewrite them).
ALTER TABLE alerts ADD COLUMN patients_n INTEGER NOT NULL DEFAULT -1;
ALTER TABLE alerts ADD COLUMN patients_digest BLOB;
