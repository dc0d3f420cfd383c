"""The raw ceiling for bench/codes.sh: COUNT code rows written straight into
the same SQLite record, with the same durability (WAL, synchronous=FULL,
foreign keys on), the same statement shape (INSERT ... ON CONFLICT(code)
DO NOTHING) and the same rows per transaction as a code job, from one
thread, no server. The codes are random strings of the job's shape, made
before the clock starts: this measures the record, not the generator.

    python3 bench/codes_raw_insert.py DB CAMPAIGN_ID COUNT ROUND
"""

import secrets
import sqlite3
import sys
import time
import uuid

db, campaign, count, per_round = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
codes = ["".join(secrets.choice(alphabet) for _ in range(12)) for _ in range(count)]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute("PRAGMA foreign_keys=ON")
# Marked done from the start, or the server's job runner would take it up.
job = str(uuid.uuid4())
now = int(time.time() * 1000)
conn.execute(
    "INSERT INTO jobs (id, kind, campaign_id, pattern, status, done, total, created_at, updated_at)"
    " VALUES (?, 'codes', ?, '############', 'done', 0, ?, ?, ?)",
    (job, campaign, count, now, now),
)
started = time.perf_counter()
for at in range(0, count, per_round):
    rows = [(c, campaign, job) for c in codes[at : at + per_round]]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO campaign_codes (code, campaign_id, job_id) VALUES (?, ?, ?)"
        " ON CONFLICT(code) DO NOTHING",
        rows,
    )
    conn.execute("UPDATE jobs SET done = done + ?, updated_at = ? WHERE id = ?", (len(rows), now, job))
    conn.execute("COMMIT")
secs = time.perf_counter() - started
print(f"raw_secs={secs:.3f} raw_rows_per_sec={count / secs:.0f}")
