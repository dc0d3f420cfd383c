-- Checkout over the broker (promises 10 and 11).
-- The same text runs on SQLite and PostgreSQL.

-- The outbox: every outbound event (published to the topic exchange
-- `flashcoupon.events`), written in the same transaction as the change it
-- reports, so a crash keeps both or neither. A relay on every instance
-- leases rows (`lease_until`), publishes them with publisher confirms and
-- deletes them once the broker confirmed: at least once, deduplicable by
-- `id`. A crash between publish and delete republishes after the lease.
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    lease_until BIGINT,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);
CREATE INDEX outbox_due ON outbox (created_at);

-- The inbox of payment events (from the queue `flashcoupon.payments` or
-- `POST /api/v1/payment-events`): one row per `event_id`, written in the
-- same transaction as the event's effect, so a repeat (a redelivery, the
-- same event over HTTP) finds it and changes nothing.
CREATE TABLE inbound_events (
    event_id    TEXT PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 128),
    event_type  TEXT NOT NULL CHECK (event_type IN
                    ('payment.succeeded', 'payment.failed', 'order.cancelled', 'order.refunded')),
    order_id    TEXT NOT NULL CHECK (length(order_id) BETWEEN 1 AND 128),
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    -- how it arrived: 'amqp' or 'http'
    source      TEXT NOT NULL CHECK (source IN ('amqp', 'http')),
    -- what it did, for the operator: e.g. 'confirmed 1', 'after_expiry', 'nothing to do'
    outcome     TEXT NOT NULL
);

-- Spends by order (a refund finds the coupons its order used). Partial: a
-- claim inserts its coupon with no order, so the hot path pays nothing.
CREATE INDEX coupons_order ON coupons (order_id) WHERE order_id IS NOT NULL;
