#!/usr/bin/env python3
"""What one coupon costs the SQLite writer, by schema variant, outside the server.

A diagnostic behind docs/benchmarks.md, not part of the benchmark. It applies
crates/flashcoupon/migrations/sqlite/0001_core.sql (edited per variant) to a
fresh database in a temp dir, with the server's pragmas (WAL, synchronous=FULL,
foreign_keys, temp_store=memory), creates 20,000 users and one campaign, then
writes 90,000 coupons for users in random order, 30 per transaction (the
benchmark's mean group-commit batch). Python's sqlite3 is not the server's
SQLite build and adds its own per-row overhead: compare variants, not absolute
figures with the server's.

    python3 bench/schema-write-cost.py [VARIANT...]
    python3 bench/schema-write-cost.py as-is 'stats-indexes (0017)' as-is 'stats-indexes (0017)'
"""
import os, random, re, sqlite3, sys, tempfile, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIGRATION = open(os.path.join(ROOT, 'crates/flashcoupon/migrations/sqlite/0001_core.sql')).read()
COUPONS, BATCH, USERS = 90_000, 30, 20_000


def uuid7():
    ms = time.time_ns() // 1_000_000
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (random.getrandbits(76)))


def no_user_fk(s):
    # Coupons of users that do not exist are refused by no-one but the token check.
    return s.replace('user_id         TEXT NOT NULL REFERENCES users (id)', 'user_id         TEXT NOT NULL')


def no_bounds_trigger(s):
    return re.sub(r'CREATE TRIGGER coupons_within_campaign_bounds.*?END;', '', s, flags=re.S)


def no_user_index(s):
    # The floor: no user-keyed index at all (gives up promise 7's per-user limit check).
    return s.replace('CREATE UNIQUE INDEX coupons_user_slot ON coupons (user_id, campaign_id, user_seq);', '')


def composite_fk(s):
    # The campaign's bounds copied into each coupon, kept true by a composite
    # foreign key (ON UPDATE CASCADE) and plain CHECKs instead of a trigger.
    s = no_bounds_trigger(s)
    s = s.replace('campaign_id     TEXT NOT NULL REFERENCES campaigns (id),',
                  'campaign_id     TEXT NOT NULL,\n    campaign_total  INTEGER NOT NULL,\n    per_user_limit  INTEGER NOT NULL,')
    s = s.replace('    UNIQUE (campaign_id, seq)\n) WITHOUT ROWID;',
                  '    UNIQUE (campaign_id, seq),\n    CHECK (seq <= campaign_total), CHECK (user_seq <= per_user_limit),\n'
                  '    FOREIGN KEY (campaign_id, campaign_total, per_user_limit)\n'
                  '        REFERENCES campaigns (id, total_quantity, per_user_limit) ON UPDATE CASCADE\n) WITHOUT ROWID;')
    s = s.replace('    CHECK (issue_ends_at > issue_starts_at),', '    CHECK (issue_ends_at > issue_starts_at),\n    UNIQUE (id, total_quantity, per_user_limit),')
    return s


def stats_indexes(s):
    # What migration 0017 first was: a (campaign_id, issued_at) index for the
    # statistics, which a drop fills at its end, and the partial index of
    # coupons with an order (never written by a claim). Measured here at
    # 4-10% of the writer's time per coupon, so 0017 kept only the partial one.
    return s + '''
CREATE INDEX coupons_campaign_issued ON coupons (campaign_id, issued_at);
CREATE INDEX coupons_campaign_ordered ON coupons (campaign_id) WHERE order_id IS NOT NULL;
'''


# The server's pragmas: WAL, synchronous=FULL, foreign keys, checkpoints off the commit path.
VARIANTS = {
    'as-is': dict(),
    'no-user-fk': dict(schema=no_user_fk),
    'no-bounds-trigger': dict(schema=no_bounds_trigger),
    'blob-ids': dict(blob=True),
    'composite-fk-instead-of-trigger': dict(schema=composite_fk),
    'synchronous=NORMAL': dict(pragmas=('synchronous=NORMAL',)),
    'no-user-index (floor)': dict(schema=no_user_index),
    'stats-indexes (0017)': dict(schema=stats_indexes),
}


def wchar():
    return int(re.search(r'wchar: (\d+)', open('/proc/self/io').read()).group(1))


def run(name, schema=lambda s: s, pragmas=(), blob=False):
    new_id = (lambda: uuid7().bytes) if blob else (lambda: str(uuid7()))
    with tempfile.TemporaryDirectory(prefix='flashcoupon-schema-') as d:
        db = sqlite3.connect(os.path.join(d, 'db'), isolation_level=None)
        for p in ('journal_mode=WAL', 'synchronous=FULL', 'foreign_keys=ON', 'temp_store=memory', 'wal_autocheckpoint=0') + pragmas:
            db.execute('PRAGMA ' + p)
        db.executescript(schema(MIGRATION))
        users = [new_id() for _ in range(USERS)]
        campaign = new_id()
        db.execute('BEGIN')
        db.executemany("INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, 'x', 0)",
                       [(u, f'u{i}@bench.invalid') for i, u in enumerate(users)])
        db.execute("INSERT INTO campaigns (id, name, discount_type, discount_amount, total_quantity, per_user_limit,"
                   " issue_starts_at, issue_ends_at, valid_days, created_at)"
                   " VALUES (?, 'b', 'fixed', 1000, 1000000000, 1000, 0, 1, 30, 0)", (campaign,))
        db.execute('COMMIT')
        fk = schema is composite_fk
        insert = ('INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, idempotency_key, issued_at,'
                  ' valid_from, valid_until' + (', campaign_total, per_user_limit) VALUES (?, ?, ?, ?, ?, NULL, 1, 1, 2, 1000000000, 1000)'
                  if fk else ') VALUES (?, ?, ?, ?, ?, NULL, ?, 1, 2)'))
        held, seq = {}, 0
        w0, t0, c0 = wchar(), time.perf_counter(), time.process_time()
        for _ in range(COUPONS // BATCH):
            rows = []
            for _ in range(BATCH):
                seq += 1
                u = random.choice(users)
                held[u] = held.get(u, 0) + 1
                # issued_at: claims commit in time order
                rows.append((new_id(), campaign, u, seq, held[u], seq))
            db.execute('BEGIN')
            db.executemany(insert, rows)
            db.execute('COMMIT')
        wall, cpu, written = time.perf_counter() - t0, time.process_time() - c0, wchar() - w0
        db.close()
    print(f'{name:32s} {1e6 * wall / COUPONS:6.1f} us/coupon wall {1e6 * cpu / COUPONS:6.1f} us/coupon CPU'
          f' {written / COUPONS / 1024:5.1f} KiB written/coupon', flush=True)


for name in sys.argv[1:] or VARIANTS:
    run(name, **VARIANTS[name])
