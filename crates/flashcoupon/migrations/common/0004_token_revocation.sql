-- Token revocation: a token issued before its user's `tokens_valid_after`
-- (ms; set by a password reset or a role change) is refused, on every
-- instance (each polls the rows changed lately, through the partial index).
-- `record_meta` holds the record's generation, written into every token, so
-- a token signed with the same secret for another record (a database
-- recreated, a restored backup of another one) is refused too.
-- The same text runs on SQLite and PostgreSQL.

ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT NOT NULL DEFAULT 0;
CREATE INDEX users_tokens_revoked ON users (tokens_valid_after) WHERE tokens_valid_after > 0;

CREATE TABLE record_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
