-- The inbox (SQLite). PostgreSQL's copy differs only in WITHOUT ROWID.

-- Every event pushed to a user is also kept here, so nothing is missed
-- while offline. The id is the pushed event's id.
CREATE TABLE notifications (
    id          TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    campaign_id TEXT,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT,
    -- Scheduled and once-only events (opening soon, opened, sold out, expiry
    -- reminders) carry `<kind>:<object>`: the unique index below is what makes
    -- them exactly once per (user, object, kind), across instances and restarts.
    once_key    TEXT,
    -- Clustered by user: the inbox is one range read, and storing a row
    -- (written with each issued coupon, in the same transaction) costs one
    -- B-tree insert besides the once index, which only once-keyed rows enter.
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX notifications_once ON notifications (user_id, once_key) WHERE once_key IS NOT NULL;

