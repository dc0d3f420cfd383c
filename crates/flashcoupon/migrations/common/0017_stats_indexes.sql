-- Statistics without a pass over a campaign's coupons (API.md
-- "Statistics"). The issue curve, the first issue and how many coupons were
-- issued before a date (so ran out, for a validity in days) are index-only
-- range reads of (campaign_id, issued_at): an index a drop fills at its end
-- (claims commit in time order), unlike the user-keyed one whose random
-- page writes are what a commit pays for. Coupons with an order (reserved
-- or used; an available coupon never has one) have a partial index of
-- their own, written by a reservation or a use, never by a claim.
CREATE INDEX coupons_campaign_issued ON coupons (campaign_id, issued_at);
CREATE INDEX coupons_campaign_ordered ON coupons (campaign_id) WHERE order_id IS NOT NULL;
