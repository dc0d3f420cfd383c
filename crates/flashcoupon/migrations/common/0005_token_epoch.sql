-- Token revocation by epoch instead of by time: each account counts its
-- revocations (a password reset, a role change) in `token_epoch`, and every
-- token carries the epoch it was issued under; a token from an older epoch
-- is refused. No clock is involved, so instances whose clocks disagree
-- neither keep a token issued just before a revocation nor refuse one
-- issued just after it (a cut in milliseconds written by one host's clock
-- and compared with another host's did both).
-- Accounts revoked under the old scheme start at epoch 1: their tokens
-- (epoch 0) are refused, and their owners sign in again.
-- The same text runs on SQLite (3.35+: DROP COLUMN) and PostgreSQL.

ALTER TABLE users ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0;
UPDATE users SET token_epoch = 1 WHERE tokens_valid_after > 0;
DROP INDEX users_tokens_revoked;
ALTER TABLE users DROP COLUMN tokens_valid_after;
CREATE INDEX users_token_epoch ON users (token_epoch) WHERE token_epoch > 0;
