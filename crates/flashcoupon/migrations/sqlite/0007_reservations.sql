-- Reservations: a coupon held for an order until it is paid (promise 8: a
-- hold resolves exactly once). Each hold is a row of its own that moves
-- from `held` to exactly one of confirmed, released or expired by a
-- conditional UPDATE (`WHERE state = 'held'`): whichever instance, request
-- or payment event gets there first wins, every other finds nothing to do.
-- The coupon's own row mirrors the live hold (status `reserved`, the order,
-- and `reserved_until`), changed in the same transaction.

ALTER TABLE coupons ADD COLUMN reserved_until INTEGER;

CREATE TABLE coupon_holds (
    id              TEXT PRIMARY KEY,
    coupon_id       TEXT NOT NULL REFERENCES coupons (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    order_id        TEXT NOT NULL CHECK (length(order_id) BETWEEN 1 AND 128),
    order_amount    INTEGER NOT NULL CHECK (order_amount >= 0),
    discount_amount INTEGER NOT NULL CHECK (discount_amount >= 0 AND discount_amount <= order_amount),
    reserved_at     INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL CHECK (expires_at > reserved_at),
    state           TEXT NOT NULL DEFAULT 'held'
                    CHECK (state IN ('held', 'confirmed', 'released', 'expired')),
    resolved_at     INTEGER,
    -- the owner was told of the expiry (a loop retries until it is so)
    notified        INTEGER NOT NULL DEFAULT 0 CHECK (notified IN (0, 1)),
    CHECK ((state = 'held') = (resolved_at IS NULL))
);
-- At most one live hold per coupon.
CREATE UNIQUE INDEX coupon_holds_live ON coupon_holds (coupon_id) WHERE state = 'held';
CREATE INDEX coupon_holds_due ON coupon_holds (expires_at) WHERE state = 'held';
CREATE INDEX coupon_holds_order ON coupon_holds (order_id);
CREATE INDEX coupon_holds_unnotified ON coupon_holds (resolved_at) WHERE state = 'expired' AND NOT notified;

-- SQLite cannot add a CHECK to an existing table: a reserved coupon has an
-- order and an expiry, and only a reserved one has an expiry. Only on UPDATE:
-- coupons are inserted by the group commit as `available` with no expiry
-- (the column defaults), and a per-row INSERT trigger would tax every claim.
CREATE TRIGGER coupons_reservation_shape
BEFORE UPDATE OF status, reserved_until, order_id ON coupons
WHEN (NEW.status = 'reserved') <> (NEW.reserved_until IS NOT NULL AND NEW.order_id IS NOT NULL)
  OR (NEW.status <> 'reserved' AND NEW.reserved_until IS NOT NULL)
BEGIN
    SELECT RAISE(ABORT, 'a reserved coupon needs its order and expiry, and only it has an expiry');
END;
