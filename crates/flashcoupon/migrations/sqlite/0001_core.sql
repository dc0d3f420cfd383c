-- The core record: accounts, campaigns, coupons.
-- Times are INTEGER milliseconds since the Unix epoch (UTC); ids are UUIDv7 text.
-- Promise 7 lives here: whatever the in-memory gate decides, these constraints
-- make an over-issue or a limit breach fail the insert instead of landing.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE campaigns (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    discount_type    TEXT NOT NULL CHECK (discount_type IN ('fixed', 'percent')),
    discount_amount  INTEGER CHECK (discount_amount IS NULL OR discount_amount > 0),
    discount_percent INTEGER CHECK (discount_percent IS NULL OR discount_percent BETWEEN 1 AND 100),
    discount_max     INTEGER CHECK (discount_max IS NULL OR discount_max > 0),
    min_order_amount INTEGER NOT NULL DEFAULT 0 CHECK (min_order_amount >= 0),
    total_quantity   INTEGER NOT NULL CHECK (total_quantity BETWEEN 1 AND 1000000000),
    per_user_limit   INTEGER NOT NULL CHECK (per_user_limit BETWEEN 1 AND 1000),
    issue_starts_at  INTEGER NOT NULL,
    issue_ends_at    INTEGER NOT NULL,
    valid_days       INTEGER CHECK (valid_days IS NULL OR valid_days BETWEEN 1 AND 3650),
    valid_from       INTEGER,
    valid_until      INTEGER,
    paused           INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    created_at       INTEGER NOT NULL,
    CHECK (issue_ends_at > issue_starts_at),
    CHECK ((valid_days IS NULL) <> (valid_until IS NULL)),
    CHECK ((discount_type = 'fixed' AND discount_amount IS NOT NULL AND discount_percent IS NULL)
        OR (discount_type = 'percent' AND discount_percent IS NOT NULL AND discount_amount IS NULL))
);

CREATE TABLE coupons (
    id              TEXT PRIMARY KEY,
    campaign_id     TEXT NOT NULL REFERENCES campaigns (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    -- rank in issue order, 1..total_quantity (upper bound: trigger below)
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    -- which of the user's slots this coupon fills, 1..per_user_limit (upper bound: trigger below)
    user_seq        INTEGER NOT NULL CHECK (user_seq >= 1),
    idempotency_key TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 128),
    status          TEXT NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'reserved', 'used')),
    issued_at       INTEGER NOT NULL,
    valid_from      INTEGER NOT NULL,
    valid_until     INTEGER NOT NULL,
    used_at         INTEGER,
    order_id        TEXT,
    order_amount    INTEGER,
    discount_amount INTEGER,
    CHECK (valid_until > valid_from),
    CHECK ((status = 'used') = (used_at IS NOT NULL AND order_id IS NOT NULL)),
    UNIQUE (campaign_id, seq)
) WITHOUT ROWID;  -- clustered by id (UUIDv7, so appends): one B-tree instead of two

-- Every index keyed by user is a random insert per coupon (users arrive in any
-- order), and that is what a commit pays for. So there is exactly one:
-- it enforces the per-user limit (promise 7) and serves the wallet reads.
CREATE UNIQUE INDEX coupons_user_slot ON coupons (user_id, campaign_id, user_seq);
-- Only keyed claims pay for the idempotency index.
CREATE UNIQUE INDEX coupons_idempotency ON coupons (user_id, campaign_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A CHECK cannot look at another table, so the campaign-relative bounds are a
-- trigger: it aborts the whole statement (and so the batch) on a breach.
CREATE TRIGGER coupons_within_campaign_bounds
BEFORE INSERT ON coupons
BEGIN
    SELECT RAISE(ABORT, 'coupon out of campaign bounds: seq above total_quantity or user_seq above per_user_limit')
    FROM campaigns c
    WHERE c.id = NEW.campaign_id
      AND (NEW.seq > c.total_quantity OR NEW.user_seq > c.per_user_limit);
END;

-- Stock may shrink, but never below a seq that was already issued.
CREATE TRIGGER campaigns_total_covers_issued
BEFORE UPDATE OF total_quantity ON campaigns
BEGIN
    SELECT RAISE(ABORT, 'total_quantity below an issued seq')
    WHERE NEW.total_quantity < (SELECT COALESCE(MAX(seq), 0) FROM coupons WHERE campaign_id = NEW.id);
END;

-- The per-user limit is part of every issued coupon's bounds: it never changes.
CREATE TRIGGER campaigns_limit_is_fixed
BEFORE UPDATE OF per_user_limit ON campaigns
WHEN NEW.per_user_limit <> OLD.per_user_limit
BEGIN
    SELECT RAISE(ABORT, 'per_user_limit cannot change');
END;
