-- versions_key_id finds the versions sealed under one data-encryption key:
-- re-encrypting a compartment under a new key version pages through them,
-- and an old key version is deleted only when none is left.
CREATE INDEX versions_key_id ON versions (key_id);
