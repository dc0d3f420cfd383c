-- Notifications: subscriptions ("notify me"), shop-side webhooks and their
-- delivery log (the inbox table is in 0003, per dialect). The same text runs on SQLite and PostgreSQL.
-- Times are BIGINT milliseconds since the Unix epoch (UTC); ids are UUIDv7 text.

CREATE TABLE subscriptions (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);

CREATE TABLE webhooks (
    id                  TEXT PRIMARY KEY,
    url                 TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    secret              TEXT NOT NULL,
    -- comma-separated event types
    events              TEXT NOT NULL,
    format              TEXT NOT NULL CHECK (format IN ('json', 'discord', 'slack')),
    stock_low_threshold BIGINT CHECK (stock_low_threshold IS NULL OR stock_low_threshold >= 1),
    created_at          BIGINT NOT NULL,
    deleted_at          BIGINT
);

-- The outbox and the delivery log in one: a row per (endpoint, event),
-- leased by one instance at a time while it is being sent.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id),
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    once_key         TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    UNIQUE (webhook_id, once_key)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
