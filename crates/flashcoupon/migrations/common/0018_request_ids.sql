-- Following one request (issue 18): the request that caused an outbound
-- event or a webhook delivery (its `X-Request-Id` and the `traceparent` of
-- its hop), sent along with it as headers so the shop can follow a claim
-- into its own systems; and the request behind a trigger event, for the
-- coupons its runner issues later. NULL for what no request caused (an
-- expiry, a reminder). The same text runs on SQLite and PostgreSQL.
ALTER TABLE outbox ADD COLUMN request_id TEXT;
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN request_id TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN traceparent TEXT;
ALTER TABLE trigger_events ADD COLUMN request_id TEXT;
ALTER TABLE trigger_events ADD COLUMN traceparent TEXT;
