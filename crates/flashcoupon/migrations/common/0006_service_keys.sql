-- Service keys: shop back ends (order and payment systems) calling server to
-- server with `Authorization: Bearer fck_…`. Only the key's SHA-256 is kept:
-- a key is 256 random bits, so a slow password hash would add latency and
-- no safety. A deleted key stays (for the audit trail) and is refused at
-- once: every request reads the record.
-- The same text runs on SQLite and PostgreSQL.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_hash     TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    deleted_at   BIGINT
);
