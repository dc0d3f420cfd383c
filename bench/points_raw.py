"""The record's own ceiling for bench/points.sh: COUNT point spends written
straight into the same SQLite record, with the same durability (WAL,
synchronous=FULL, foreign keys on), the same statements and one transaction
per spend, as the server's ledger write does (src/store/points.rs,
`ledger_write!`): lock the account (an upsert), write the entry (a repeated
reference would collide),
take from the earliest live lot, record the take, move the account. One
thread, no server, no HTTP.

    python3 bench/points_raw.py DB USERS_FILE COUNT RUN [BATCH]

USERS_FILE: one user id per line, each with an earned lot (the server's
earns); spends go round them in order (one line: the hot user). RUN tags
the references, so each run's are its own. BATCH (default 1): spends per
transaction, each in a savepoint of its own, as the server's points group
commit writes them (src/points/writer.rs): the ceiling of that shape.
"""

import secrets
import sqlite3
import sys
import time
import uuid


def uuid7() -> str:
    """A time-ordered id, as the server's (UUIDv7): the same index locality."""
    ms = int(time.time() * 1000)
    r = secrets.randbits(74)
    v = (ms << 80) | (0x7 << 76) | ((r >> 62) << 64) | (0b10 << 62) | (r & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


db, users_file, count, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1
users = [u.strip() for u in open(users_file) if u.strip()]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute("PRAGMA foreign_keys=ON")
now = int(time.time() * 1000)
started = time.perf_counter()
for n in range(count):
    user = users[n % len(users)]
    reference = f"{run}-{n}"
    entry = uuid7()
    if n % batch == 0:
        conn.execute("BEGIN IMMEDIATE")
    if batch > 1:
        conn.execute("SAVEPOINT one")
    seq, balance, held = conn.execute(
        "INSERT INTO point_accounts (user_id) VALUES (?) ON CONFLICT (user_id)"
        " DO UPDATE SET held = point_accounts.held RETURNING seq, balance, held",
        (user,),
    ).fetchone()
    seq = (seq or 0) + 1
    inserted = conn.execute(
        "INSERT INTO point_entries (id, user_id, seq, prev_seq, prev_balance, kind, amount, balance_after,"
        " reference, reason, order_id, refund_of, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, 'spend', -1, ?, ?, 'bench', NULL, NULL, ?, NULL) ON CONFLICT DO NOTHING",
        (entry, user, seq, seq - 1 if seq > 1 else None, balance, balance - 1, reference, now),
    ).rowcount
    assert inserted == 1
    lot, remaining = conn.execute(
        "SELECT id, remaining FROM point_lots WHERE user_id = ? AND remaining > 0 AND expires_at > ?"
        " ORDER BY expires_at, id",
        (user, now),
    ).fetchone()
    conn.execute("UPDATE point_lots SET remaining = remaining - 1 WHERE id = ?", (lot,))
    conn.execute("INSERT INTO point_takes (entry_id, lot_id, amount) VALUES (?, ?, 1)", (entry, lot))
    conn.execute(
        "UPDATE point_accounts SET seq = ?, balance = ?, held = ? WHERE user_id = ?",
        (seq, balance - 1, held, user),
    )
    if batch > 1:
        conn.execute("RELEASE one")
    if n % batch == batch - 1 or n == count - 1:
        conn.execute("COMMIT")
secs = time.perf_counter() - started
print(f"raw_secs={secs:.3f} raw_spends_per_sec={count / secs:.0f}")
