-- Codes (API.md "Codes"): how a campaign issues, unique codes made by
-- background jobs, shared codes, and triggers.
-- The same text runs on SQLite and PostgreSQL.

ALTER TABLE campaigns ADD COLUMN issuance TEXT NOT NULL DEFAULT 'claim'
    CHECK (issuance IN ('claim', 'codes', 'shared_code'));
-- the public code of a shared_code campaign, upper-case
ALTER TABLE campaigns ADD COLUMN code TEXT
    CHECK (code IS NULL OR length(code) BETWEEN 4 AND 32);
-- 'signup', 'first_order_paid' or 'custom:<name>'
ALTER TABLE campaigns ADD COLUMN trigger_name TEXT
    CHECK (trigger_name IS NULL OR length(trigger_name) BETWEEN 1 AND 71);
-- Codes promised by code jobs (a failed job gives back what it did not
-- make). Never more codes than stock: the stock cannot shrink below them
-- and a job that would pass it is refused.
ALTER TABLE campaigns ADD COLUMN codes_planned BIGINT NOT NULL DEFAULT 0
    CHECK (codes_planned >= 0 AND codes_planned <= total_quantity);

-- The code a coupon was redeemed with: a unique code is used at most once,
-- whatever the gate decided (promise 7's last line). Partial: a claim by
-- button writes no code, so the hot path pays nothing for the index.
ALTER TABLE coupons ADD COLUMN code TEXT;
CREATE UNIQUE INDEX coupons_code ON coupons (code) WHERE code IS NOT NULL;

-- Background jobs (today: generating a campaign's codes). A job is worked
-- by one instance at a time under a lease; another (or the same, after a
-- restart) takes it over when the lease runs out. `done` moves in the same
-- transaction as the codes it counts.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('codes')),
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    pattern     TEXT NOT NULL CHECK (length(pattern) BETWEEN 1 AND 64),
    status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    done        BIGINT NOT NULL DEFAULT 0 CHECK (done >= 0),
    total       BIGINT NOT NULL CHECK (total >= 1),
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    lease_until BIGINT,
    CHECK (done <= total)
);
CREATE INDEX jobs_running ON jobs (status, created_at);

-- Unique single-use codes. Used = a coupon carries the code. A redemption
-- leases its code (`lease_until`, `leased_by` = user and Idempotency-Key)
-- while its claim is decided, so two redemptions of one code never race
-- into the gate, and the same request retried is told to wait, not refused.
CREATE TABLE campaign_codes (
    code        TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    lease_until BIGINT,
    leased_by   TEXT
);
CREATE INDEX campaign_codes_campaign ON campaign_codes (campaign_id, code);

-- Shared codes in use: a code belongs to one campaign until that campaign's
-- issuing ends (`ends_at`); then a new campaign may take it over.
CREATE TABLE shared_codes (
    code        TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    ends_at     BIGINT NOT NULL
);
