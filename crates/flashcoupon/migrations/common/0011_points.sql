-- Points (적립금, API.md "Points"): a ledger, not a counter. The same text
-- runs on SQLite and PostgreSQL; 0012 makes the entries immutable.
--
-- Every change is an entry. A user's entries form one chain: entry `seq`
-- starts from the balance the entry before it ended with (`prev_balance`,
-- tied to that entry by a foreign key) and ends at `balance_after`, which
-- can never be negative. So, as constraints of the record and not only
-- checks in code: the balance is never below zero (promise 9), and the last
-- entry's `balance_after` is the sum of every entry's amount. The account
-- row is the lock every write of a user takes first, and points at the
-- chain's last entry (a foreign key again).
CREATE TABLE point_entries (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    seq           BIGINT NOT NULL CHECK (seq >= 1),
    prev_seq      BIGINT,
    prev_balance  BIGINT NOT NULL,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('earn', 'spend', 'hold', 'release', 'expire', 'refund', 'adjust')),
    amount        BIGINT NOT NULL
                  CHECK (amount <> 0 AND amount BETWEEN -1000000000000 AND 1000000000000),
    balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
    -- the caller's idempotency key (earn, spend, refund, adjust)
    reference     TEXT CHECK (reference IS NULL OR length(reference) BETWEEN 1 AND 128),
    reason        TEXT CHECK (reason IS NULL OR length(reason) <= 500),
    order_id      TEXT CHECK (order_id IS NULL OR length(order_id) BETWEEN 1 AND 128),
    -- a refund: the spend it gives back (once)
    refund_of     TEXT REFERENCES point_entries (id),
    created_at    BIGINT NOT NULL,
    -- an earn: when its unspent remainder expires; a hold: when it runs out
    expires_at    BIGINT,
    CHECK (balance_after = prev_balance + amount),
    -- Spelled so that no NULL can make it pass: a later entry must name
    -- the one before it, and the foreign key below then checks it.
    CHECK ((seq = 1 AND prev_seq IS NULL AND prev_balance = 0)
        OR (seq > 1 AND prev_seq IS NOT NULL AND prev_seq = seq - 1)),
    CHECK (kind NOT IN ('earn', 'refund', 'release') OR amount > 0),
    CHECK (kind NOT IN ('spend', 'hold', 'expire') OR amount < 0),
    CHECK ((kind = 'refund') = (refund_of IS NOT NULL)),
    UNIQUE (user_id, seq),
    UNIQUE (user_id, seq, balance_after),
    FOREIGN KEY (user_id, prev_seq, prev_balance)
        REFERENCES point_entries (user_id, seq, balance_after)
);
CREATE UNIQUE INDEX point_entries_reference ON point_entries (user_id, reference)
    WHERE reference IS NOT NULL;
CREATE UNIQUE INDEX point_entries_refund_of ON point_entries (refund_of)
    WHERE refund_of IS NOT NULL;
CREATE INDEX point_entries_order ON point_entries (order_id) WHERE order_id IS NOT NULL;

-- One row per user with points: the chain's end (NULL before the first
-- entry) and the open holds' total.
CREATE TABLE point_accounts (
    user_id TEXT PRIMARY KEY REFERENCES users (id),
    seq     BIGINT,
    balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held    BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    CHECK (seq IS NOT NULL OR balance = 0),
    FOREIGN KEY (user_id, seq, balance) REFERENCES point_entries (user_id, seq, balance_after)
);

-- Lots: what an earn (or a positive adjust) brought, and how much of it is
-- left; spends, holds and expiries take from the earliest-expiring first.
CREATE TABLE point_lots (
    id         TEXT PRIMARY KEY REFERENCES point_entries (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    remaining  BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at BIGINT NOT NULL,
    -- `points.expiring_soon` was written for this lot
    warned     BIGINT NOT NULL DEFAULT 0 CHECK (warned IN (0, 1))
);
CREATE INDEX point_lots_user ON point_lots (user_id, expires_at) WHERE remaining > 0;
CREATE INDEX point_lots_due ON point_lots (expires_at) WHERE remaining > 0;

-- What an entry took from which lot (a spend, a hold, a negative adjust, an
-- expiry): a refund or a release gives exactly that back, with the lots'
-- own expiry.
CREATE TABLE point_takes (
    entry_id TEXT NOT NULL REFERENCES point_entries (id),
    lot_id   TEXT NOT NULL REFERENCES point_lots (id),
    amount   BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, lot_id)
);

-- Holds: points set aside for an order until its payment (promise 8). One
-- per (user, order); it leaves `held` once, by a conditional UPDATE, for
-- confirmed (a spend), released or expired (a release entry gives the
-- points back).
CREATE TABLE point_holds (
    entry_id    TEXT PRIMARY KEY REFERENCES point_entries (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    order_id    TEXT NOT NULL CHECK (length(order_id) BETWEEN 1 AND 128),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL CHECK (expires_at > created_at),
    state       TEXT NOT NULL DEFAULT 'held'
                CHECK (state IN ('held', 'confirmed', 'released', 'expired')),
    resolved_at BIGINT,
    CHECK ((state = 'held') = (resolved_at IS NULL)),
    UNIQUE (user_id, order_id)
);
CREATE INDEX point_holds_due ON point_holds (expires_at) WHERE state = 'held';
CREATE INDEX point_holds_order ON point_holds (order_id);
