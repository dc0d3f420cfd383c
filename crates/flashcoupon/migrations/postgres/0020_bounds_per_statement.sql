-- Promise 7's campaign bounds (seq <= total_quantity, user_seq <=
-- per_user_limit), checked once per INSERT statement instead of once per row
-- (issue 17). The group commit writes a batch in one statement; the row
-- trigger ran a plpgsql call and a locking read of the campaign for every
-- coupon. Same rule, same error code (check_violation: the whole statement,
-- so the whole batch, is refused), same lock: the campaigns written to are
-- read FOR SHARE (in id order, as the writer's fence locks them), so a stock
-- cut in progress is waited for and its new total is the one checked (each
-- statement of a plpgsql function sees what committed before it), and a
-- later cut waits for this transaction and then sees its coupons. For the
-- group commit it is its own fence (campaigns FOR SHARE before the INSERT,
-- store/postgres/writer.rs) that orders a batch against a cut: keep it.
-- The function must stay VOLATILE (a STABLE one would check the total of
-- the snapshot taken before the wait) and the sessions READ COMMITTED.
DROP TRIGGER coupons_within_campaign_bounds ON coupons;
DROP FUNCTION coupons_within_campaign_bounds();

CREATE FUNCTION coupons_within_campaign_bounds() RETURNS trigger AS $$
BEGIN
    PERFORM 1 FROM campaigns
      WHERE id IN (SELECT DISTINCT campaign_id FROM new_coupons)
      ORDER BY id FOR SHARE;
    IF EXISTS (
        SELECT 1 FROM new_coupons n JOIN campaigns c ON c.id = n.campaign_id
         WHERE n.seq > c.total_quantity OR n.user_seq > c.per_user_limit
    ) THEN
        RAISE EXCEPTION 'coupon out of campaign bounds: seq above total_quantity or user_seq above per_user_limit'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER coupons_within_campaign_bounds
AFTER INSERT ON coupons
REFERENCING NEW TABLE AS new_coupons
FOR EACH STATEMENT EXECUTE FUNCTION coupons_within_campaign_bounds();
