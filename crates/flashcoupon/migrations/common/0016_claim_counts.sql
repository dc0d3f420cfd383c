-- Claim answers counted by every instance (API.md "Statistics"): each
-- running instance (one incarnation: a new id at every start) keeps one row
-- per campaign with its running totals since it started, and rewrites it
-- about every second. A campaign's cluster-wide counts are the sums over
-- its rows, so any instance answers the same, and a restart (a new
-- incarnation, new rows) keeps what the old one wrote. A rewrite replaces
-- the row, so a write retried or landing twice counts once.
CREATE TABLE claim_counts (
    campaign_id   TEXT NOT NULL REFERENCES campaigns (id),
    instance      TEXT NOT NULL CHECK (length(instance) BETWEEN 1 AND 64),
    updated_at    BIGINT NOT NULL,
    issued        BIGINT NOT NULL DEFAULT 0 CHECK (issued >= 0),
    replayed      BIGINT NOT NULL DEFAULT 0 CHECK (replayed >= 0),
    sold_out      BIGINT NOT NULL DEFAULT 0 CHECK (sold_out >= 0),
    limit_reached BIGINT NOT NULL DEFAULT 0 CHECK (limit_reached >= 0),
    not_open      BIGINT NOT NULL DEFAULT 0 CHECK (not_open >= 0),
    ended         BIGINT NOT NULL DEFAULT 0 CHECK (ended >= 0),
    paused        BIGINT NOT NULL DEFAULT 0 CHECK (paused >= 0),
    rate_limited  BIGINT NOT NULL DEFAULT 0 CHECK (rate_limited >= 0),
    unavailable   BIGINT NOT NULL DEFAULT 0 CHECK (unavailable >= 0),
    PRIMARY KEY (campaign_id, instance)
);
