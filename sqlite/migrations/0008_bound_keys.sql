-- bound marks wrapped keys whose wrapping is bound to their id (wrap format
-- 2, see docs/crypto.md). Keys stored before are unbound (0) until a rewrap
-- binds them; the server does that at start.
ALTER TABLE keys ADD COLUMN bound INTEGER NOT NULL DEFAULT 0;
