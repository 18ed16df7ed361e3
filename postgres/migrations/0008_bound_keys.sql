-- bound marks wrapped keys whose wrapping is bound to their id (wrap format
-- 2, see docs/crypto.md). Keys stored before are unbound (false) until a
-- rewrap binds them; the server does that at start.
ALTER TABLE keys ADD COLUMN bound boolean NOT NULL DEFAULT false;
