-- Time sales (타임세일, API.md "Time sales and orders"): limited product
-- stock sold first come first served through the same admission core as
-- coupons. A sale is a drop (kind `s`); an order is one unit of it. The
-- same text runs on SQLite and PostgreSQL; 0014 adds the bounds (triggers).
CREATE TABLE sales (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    sku              TEXT NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    product_name     TEXT NOT NULL CHECK (length(product_name) BETWEEN 1 AND 200),
    list_price       BIGINT NOT NULL CHECK (list_price BETWEEN 1 AND 1000000000000),
    sale_price       BIGINT NOT NULL CHECK (sale_price >= 0 AND sale_price <= list_price),
    total_quantity   BIGINT NOT NULL CHECK (total_quantity BETWEEN 1 AND 1000000000),
    per_user_limit   BIGINT NOT NULL CHECK (per_user_limit BETWEEN 1 AND 1000),
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT NOT NULL,
    payment_ttl_secs BIGINT NOT NULL CHECK (payment_ttl_secs BETWEEN 1 AND 86400),
    paused           BOOLEAN NOT NULL DEFAULT FALSE,
    -- the gate generation (scale-out): a rebuild bumps it, and commits of
    -- orders admitted by an older one are skipped
    gate_epoch       BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    CHECK (ends_at > starts_at)
);

-- One order is one unit. An order holds its unit (its `seq` and its
-- buyer's `user_seq`) while it is pending, paid or refunded; an expired or
-- cancelled order gave it back, and another order may hold that seq since:
-- so the uniqueness of seq and slot is over the orders that hold a unit.
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    sale_id         TEXT NOT NULL REFERENCES sales (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    user_seq        BIGINT NOT NULL CHECK (user_seq >= 1),
    idempotency_key TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 128),
    unit_price      BIGINT NOT NULL CHECK (unit_price >= 0),
    coupon_id       TEXT REFERENCES coupons (id),
    coupon_discount BIGINT NOT NULL DEFAULT 0 CHECK (coupon_discount >= 0),
    points_used     BIGINT NOT NULL DEFAULT 0 CHECK (points_used >= 0),
    payable_amount  BIGINT NOT NULL CHECK (payable_amount >= 0),
    status          TEXT NOT NULL DEFAULT 'pending_payment'
                    CHECK (status IN ('pending_payment', 'paid', 'expired', 'cancelled', 'refunded')),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL CHECK (expires_at > created_at),
    -- when it left pending_payment (paid, expired or cancelled)
    ended_at        BIGINT,
    refunded_at     BIGINT,
    -- an expired or cancelled order's unit is back in the gate (a loop
    -- retries until it is: see selling::orders::return_units)
    unit_returned   BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK (payable_amount = unit_price - coupon_discount - points_used),
    CHECK (coupon_id IS NOT NULL OR coupon_discount = 0),
    CHECK ((status = 'pending_payment') = (ended_at IS NULL)),
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL)),
    CHECK (NOT unit_returned OR status IN ('expired', 'cancelled'))
);
CREATE UNIQUE INDEX orders_seq ON orders (sale_id, seq)
    WHERE status IN ('pending_payment', 'paid', 'refunded');
CREATE UNIQUE INDEX orders_user_slot ON orders (user_id, sale_id, user_seq)
    WHERE status IN ('pending_payment', 'paid', 'refunded');
CREATE UNIQUE INDEX orders_idempotency ON orders (user_id, sale_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_sale ON orders (sale_id, seq);
CREATE INDEX orders_due ON orders (expires_at) WHERE status = 'pending_payment';
CREATE INDEX orders_unreturned ON orders (ended_at)
    WHERE status IN ('expired', 'cancelled') AND NOT unit_returned;

-- Orders the reconciler judged lost (their instance died before the
-- commit): written off under the sale's row lock, so a commit queued all
-- along skips them instead of landing an order whose unit was given back.
CREATE TABLE abandoned_orders (
    order_id TEXT PRIMARY KEY
);
