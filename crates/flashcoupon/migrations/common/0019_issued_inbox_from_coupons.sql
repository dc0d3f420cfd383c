-- A coupon's `coupon.issued` inbox entry is the coupon itself (issue 17):
-- the group commit writes one row per coupon instead of two (the inbox row
-- was a second random insert keyed by user, half of what a claim wrote to
-- disk), and the inbox reads the user's coupons next to their notifications.
-- Whether the entry was read is kept on the coupon.
ALTER TABLE coupons ADD COLUMN inbox_read_at BIGINT;
-- The read state of the entries the inbox kept until now. The old rows
-- themselves stay: the inbox no longer reads `coupon.issued` rows (an
-- instance of an older version still writing them during a rolling upgrade
-- shows nothing twice), and deleting them here would hold the coupons
-- table locked for as long as a large inbox takes to rewrite.
UPDATE coupons SET inbox_read_at = n.read_at
FROM notifications n
WHERE n.id = coupons.id AND n.user_id = coupons.user_id
  AND n.kind = 'coupon.issued' AND n.read_at IS NOT NULL;
