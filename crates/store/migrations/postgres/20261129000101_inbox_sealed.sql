-- (Numbered 000101: 000100 is the vault's, and the vault may share a PostgreSQL database.)
-- Operations (issue 7): inbox messages sealed under the subject's key, so erasure by key
-- destruction covers them, with an expiry for the purge job. Rows written before this
-- keep title/body in clear with sealed NULL until the purge job seals them (then their
-- title/body are emptied).
ALTER TABLE inbox_messages ADD COLUMN sealed BYTEA;
ALTER TABLE inbox_messages ADD COLUMN expires_ms BIGINT;
CREATE INDEX inbox_messages_created ON inbox_messages (created_ms);
