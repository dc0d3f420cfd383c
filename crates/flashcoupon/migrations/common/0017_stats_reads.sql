-- Statistics without a pass over a campaign's coupons (API.md
-- "Statistics"), and without taxing a claim: nothing here is written by
-- the group commit.
--
-- Coupons with an order (reserved or used; an available coupon never has
-- one) have a partial index of their own, written by a reservation or a
-- use: the summary's reserved, used, totals and uses per day read it.
CREATE INDEX coupons_campaign_ordered ON coupons (campaign_id) WHERE order_id IS NOT NULL;

-- The issue curve: coupons issued per minute (`minute` = ms / 60,000), as
-- every instance counted the claims it answered 201, a row per campaign,
-- instance incarnation and minute written with `claim_counts` (0016) and
-- the same way (a row replaces the last one the instance wrote).
CREATE TABLE claim_minutes (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    instance    TEXT NOT NULL CHECK (length(instance) BETWEEN 1 AND 64),
    minute      BIGINT NOT NULL,
    issued      BIGINT NOT NULL CHECK (issued >= 0),
    PRIMARY KEY (campaign_id, minute, instance)
);
