-- The core record on PostgreSQL: the same tables and the same promise-7
-- constraints as the SQLite schema (migrations/sqlite/0001_core.sql), plus the
-- gate generation that fences claims admitted before a gate rebuild.
-- Times are BIGINT milliseconds since the Unix epoch (UTC); ids are UUIDv7 text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    BIGINT NOT NULL
);

CREATE TABLE campaigns (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    discount_type    TEXT NOT NULL CHECK (discount_type IN ('fixed', 'percent')),
    discount_amount  BIGINT CHECK (discount_amount IS NULL OR discount_amount > 0),
    discount_percent BIGINT CHECK (discount_percent IS NULL OR discount_percent BETWEEN 1 AND 100),
    discount_max     BIGINT CHECK (discount_max IS NULL OR discount_max > 0),
    min_order_amount BIGINT NOT NULL DEFAULT 0 CHECK (min_order_amount >= 0),
    total_quantity   BIGINT NOT NULL CHECK (total_quantity BETWEEN 1 AND 1000000000),
    per_user_limit   BIGINT NOT NULL CHECK (per_user_limit BETWEEN 1 AND 1000),
    issue_starts_at  BIGINT NOT NULL,
    issue_ends_at    BIGINT NOT NULL,
    valid_days       BIGINT CHECK (valid_days IS NULL OR valid_days BETWEEN 1 AND 3650),
    valid_from       BIGINT,
    valid_until      BIGINT,
    paused           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL,
    -- Bumped by every gate rebuild; a coupon is written only if the gate that
    -- admitted it is the current generation (see the group-commit INSERT).
    gate_epoch       BIGINT NOT NULL DEFAULT 0,
    CHECK (issue_ends_at > issue_starts_at),
    CHECK ((valid_days IS NULL) <> (valid_until IS NULL)),
    CHECK ((discount_type = 'fixed' AND discount_amount IS NOT NULL AND discount_percent IS NULL)
        OR (discount_type = 'percent' AND discount_percent IS NOT NULL AND discount_amount IS NULL))
);

CREATE TABLE coupons (
    id              TEXT PRIMARY KEY,
    campaign_id     TEXT NOT NULL REFERENCES campaigns (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    user_seq        BIGINT NOT NULL CHECK (user_seq >= 1),
    idempotency_key TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 128),
    status          TEXT NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'reserved', 'used')),
    issued_at       BIGINT NOT NULL,
    valid_from      BIGINT NOT NULL,
    valid_until     BIGINT NOT NULL,
    used_at         BIGINT,
    order_id        TEXT,
    order_amount    BIGINT,
    discount_amount BIGINT,
    CHECK (valid_until > valid_from),
    CHECK ((status = 'used') = (used_at IS NOT NULL AND order_id IS NOT NULL)),
    UNIQUE (campaign_id, seq)
);

-- Claims the reconciler judged lost (their instance died before committing):
-- written off under the campaign's row lock, so a commit that was queued all
-- along skips them instead of landing a coupon whose stock was given back.
CREATE TABLE abandoned_claims (
    coupon_id TEXT PRIMARY KEY
);

CREATE UNIQUE INDEX coupons_user_slot ON coupons (user_id, campaign_id, user_seq);
CREATE UNIQUE INDEX coupons_idempotency ON coupons (user_id, campaign_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- seq <= total_quantity and user_seq <= per_user_limit. The campaign row is
-- read FOR SHARE, so a concurrent stock cut (an UPDATE, which locks the row)
-- waits for this transaction, and this insert waits for the cut: the bound
-- checked is the one in force when the coupon commits.
CREATE FUNCTION coupons_within_campaign_bounds() RETURNS trigger AS $$
DECLARE
    total BIGINT;
    lim   BIGINT;
BEGIN
    SELECT total_quantity, per_user_limit INTO total, lim
      FROM campaigns WHERE id = NEW.campaign_id FOR SHARE;
    IF NEW.seq > total OR NEW.user_seq > lim THEN
        RAISE EXCEPTION 'coupon out of campaign bounds: seq above total_quantity or user_seq above per_user_limit'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER coupons_within_campaign_bounds
BEFORE INSERT ON coupons
FOR EACH ROW EXECUTE FUNCTION coupons_within_campaign_bounds();

-- Stock may shrink, but never below a seq that was already issued.
CREATE FUNCTION campaigns_total_covers_issued() RETURNS trigger AS $$
BEGIN
    IF NEW.total_quantity < (SELECT COALESCE(MAX(seq), 0) FROM coupons WHERE campaign_id = NEW.id) THEN
        RAISE EXCEPTION 'total_quantity below an issued seq' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER campaigns_total_covers_issued
BEFORE UPDATE OF total_quantity ON campaigns
FOR EACH ROW EXECUTE FUNCTION campaigns_total_covers_issued();

-- The per-user limit is part of every issued coupon's bounds: it never changes.
CREATE FUNCTION campaigns_limit_is_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'per_user_limit cannot change' USING ERRCODE = 'check_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER campaigns_limit_is_fixed
BEFORE UPDATE OF per_user_limit ON campaigns
FOR EACH ROW WHEN (NEW.per_user_limit <> OLD.per_user_limit)
EXECUTE FUNCTION campaigns_limit_is_fixed();
