-- Promise 7 for time sales: the record refuses an order past the stock or
-- past its buyer's limit, a stock cut below a unit an order holds, and any
-- status move but pending_payment → paid | expired | cancelled and
-- paid → refunded (each order leaves pending_payment once). The sale row
-- is read FOR SHARE, so a concurrent stock cut waits for the insert.
CREATE FUNCTION orders_within_sale_bounds() RETURNS trigger AS $$
DECLARE
    total BIGINT;
    lim   BIGINT;
BEGIN
    SELECT total_quantity, per_user_limit INTO total, lim
      FROM sales WHERE id = NEW.sale_id FOR SHARE;
    IF NEW.seq > total OR NEW.user_seq > lim THEN
        RAISE EXCEPTION 'order out of sale bounds: seq above total_quantity or user_seq above per_user_limit'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> 'pending_payment' OR NEW.unit_returned THEN
        RAISE EXCEPTION 'an order starts as pending_payment' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER orders_within_sale_bounds
BEFORE INSERT ON orders
FOR EACH ROW EXECUTE FUNCTION orders_within_sale_bounds();

CREATE FUNCTION sales_total_covers_sold() RETURNS trigger AS $$
BEGIN
    IF NEW.total_quantity < (SELECT COALESCE(MAX(seq), 0) FROM orders
        WHERE sale_id = NEW.id AND status IN ('pending_payment', 'paid', 'refunded')) THEN
        RAISE EXCEPTION 'total_quantity below a seq an order holds' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sales_total_covers_sold
BEFORE UPDATE OF total_quantity ON sales
FOR EACH ROW EXECUTE FUNCTION sales_total_covers_sold();

CREATE FUNCTION sales_limit_is_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'per_user_limit cannot change' USING ERRCODE = 'check_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sales_limit_is_fixed
BEFORE UPDATE OF per_user_limit ON sales
FOR EACH ROW WHEN (NEW.per_user_limit <> OLD.per_user_limit)
EXECUTE FUNCTION sales_limit_is_fixed();

CREATE FUNCTION orders_status_moves_once() RETURNS trigger AS $$
BEGIN
    IF NEW.status <> OLD.status
       AND NOT (OLD.status = 'pending_payment' AND NEW.status IN ('paid', 'expired', 'cancelled'))
       AND NOT (OLD.status = 'paid' AND NEW.status = 'refunded') THEN
        RAISE EXCEPTION 'an order leaves pending_payment once, and only a paid order is refunded'
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.sale_id, NEW.user_id, NEW.seq, NEW.user_seq, NEW.unit_price, NEW.coupon_id,
        NEW.coupon_discount, NEW.points_used) IS DISTINCT FROM
       (OLD.sale_id, OLD.user_id, OLD.seq, OLD.user_seq, OLD.unit_price, OLD.coupon_id,
        OLD.coupon_discount, OLD.points_used) THEN
        RAISE EXCEPTION 'an order''s unit and amounts never change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER orders_status_moves_once
BEFORE UPDATE ON orders
FOR EACH ROW EXECUTE FUNCTION orders_status_moves_once();
