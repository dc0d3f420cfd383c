-- Event-triggered issuance (API.md "Codes"): the inbox of trigger events
-- (a sign-up, a shop's custom event), one row per `event_id`, worked by a
-- runner on every instance under a lease until each campaign with that
-- trigger decided the user's coupon. A sign-up writes its event in the same
-- transaction as the account, so a crash cannot lose the welcome coupon.
-- No foreign key to users: deleting an account is not blocked by its history.
CREATE TABLE trigger_events (
    event_id    TEXT PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 128),
    -- 'signup', 'first_order_paid' or 'custom:<name>'
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 71),
    user_id     TEXT NOT NULL,
    -- how it arrived: 'signup', 'order' (a first paid order), 'http' or 'amqp'
    source      TEXT NOT NULL CHECK (source IN ('signup', 'order', 'http', 'amqp')),
    received_at BIGINT NOT NULL,
    lease_until BIGINT,
    done_at     BIGINT,
    -- what it did, e.g. 'issued 1, sold_out 1'
    outcome     TEXT
);
CREATE INDEX trigger_events_pending ON trigger_events (received_at) WHERE done_at IS NULL;
