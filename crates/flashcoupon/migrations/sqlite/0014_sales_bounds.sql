-- Promise 7 for time sales: the record refuses an order past the stock or
-- past its buyer's limit, a stock cut below a unit an order holds, and any
-- status move but pending_payment → paid | expired | cancelled and
-- paid → refunded (each order leaves pending_payment once).
CREATE TRIGGER orders_within_sale_bounds
BEFORE INSERT ON orders
BEGIN
    SELECT RAISE(ABORT, 'order out of sale bounds: seq above total_quantity or user_seq above per_user_limit')
    FROM sales s
    WHERE s.id = NEW.sale_id
      AND (NEW.seq > s.total_quantity OR NEW.user_seq > s.per_user_limit);
    SELECT RAISE(ABORT, 'an order starts as pending_payment')
    WHERE NEW.status <> 'pending_payment' OR NEW.unit_returned;
END;

CREATE TRIGGER sales_total_covers_sold
BEFORE UPDATE OF total_quantity ON sales
BEGIN
    SELECT RAISE(ABORT, 'total_quantity below a seq an order holds')
    WHERE NEW.total_quantity < (SELECT COALESCE(MAX(seq), 0) FROM orders
        WHERE sale_id = NEW.id AND status IN ('pending_payment', 'paid', 'refunded'));
END;

CREATE TRIGGER sales_limit_is_fixed
BEFORE UPDATE OF per_user_limit ON sales
WHEN NEW.per_user_limit <> OLD.per_user_limit
BEGIN
    SELECT RAISE(ABORT, 'per_user_limit cannot change');
END;

CREATE TRIGGER orders_status_moves_once
BEFORE UPDATE OF status ON orders
WHEN NEW.status <> OLD.status
 AND NOT (OLD.status = 'pending_payment' AND NEW.status IN ('paid', 'expired', 'cancelled'))
 AND NOT (OLD.status = 'paid' AND NEW.status = 'refunded')
BEGIN
    SELECT RAISE(ABORT, 'an order leaves pending_payment once, and only a paid order is refunded');
END;

CREATE TRIGGER orders_keep_their_unit
BEFORE UPDATE OF sale_id, user_id, seq, user_seq, unit_price, coupon_id, coupon_discount, points_used ON orders
BEGIN
    SELECT RAISE(ABORT, 'an order''s unit and amounts never change');
END;
