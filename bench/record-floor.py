#!/usr/bin/env python3
"""The floor of a durable claim record on SQLite, outside the server.

A diagnostic behind docs/benchmarks.md ("Levers measured and set aside,
session 19"), not part of the benchmark: N rows for 20,000 users in random
order, BATCH rows a transaction, WAL, synchronous=FULL (one fsync a
commit), on a fresh database in a temp dir under the working directory.
Variants:
  min-int        integer ids; PRIMARY KEY (campaign, seq) WITHOUT ROWID and
                 one UNIQUE (user, campaign, user_seq): the least promise 7
                 needs (seq bounds, per-user slot)
  min-int-noidx  the same without the per-user index (gives promise 7 up)
  min-blob       16-byte ids (time-ordered coupon id), three unique indexes
Python's sqlite3 adds its own per-row cost: compare variants, and read the
figures as an upper bound of what SQLite itself needs.

    python3 bench/record-floor.py min-int:32:4096 min-int:128:4096 min-blob:32:1024
    (variant:batch:page_size; N=200000 by default)
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

N = int(os.environ.get("N", "200000"))
USERS = 20_000

SCHEMAS = {
    "min-int": [
        "CREATE TABLE c (campaign INTEGER, seq INTEGER, user INTEGER, user_seq INTEGER,"
        " at INTEGER, PRIMARY KEY (campaign, seq)) WITHOUT ROWID",
        "CREATE UNIQUE INDEX c_user ON c (user, campaign, user_seq)",
    ],
    "min-int-noidx": [
        "CREATE TABLE c (campaign INTEGER, seq INTEGER, user INTEGER, user_seq INTEGER,"
        " at INTEGER, PRIMARY KEY (campaign, seq)) WITHOUT ROWID",
    ],
    "min-blob": [
        "CREATE TABLE c (id BLOB PRIMARY KEY, campaign BLOB, seq INTEGER, user BLOB,"
        " user_seq INTEGER, at INTEGER)",
        "CREATE UNIQUE INDEX c_seq ON c (campaign, seq)",
        "CREATE UNIQUE INDEX c_user ON c (user, campaign, user_seq)",
    ],
}


def row_maker(variant):
    """The i-th row, for user u (the user's slot: one per pass over the users)."""
    if variant.startswith("min-int"):
        return lambda i, u: (1, i + 1, u, i // USERS + 1, i)
    campaign = os.urandom(16)
    users = [os.urandom(16) for _ in range(USERS)]

    def blob_row(i, u):
        # A time-ordered id, as the server's UUIDv7s are.
        coupon = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)
        return (coupon, campaign, i + 1, users[u], i // USERS + 1, i)

    return blob_row


def run(variant, batch, page):
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "floor.db"), isolation_level=None)
        db.execute(f"PRAGMA page_size={page}")
        db.execute("PRAGMA journal_mode=wal")
        db.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMAS[variant]:
            db.execute(statement)
        make = row_maker(variant)
        width = 5 if variant.startswith("min-int") else 6
        insert = f"INSERT INTO c VALUES ({', '.join('?' * width)})"
        order = []
        users = list(range(USERS))
        while len(order) < N:
            random.shuffle(users)
            order += users
        started = time.perf_counter()
        for first in range(0, N, batch):
            rows = [make(i, order[i]) for i in range(first, min(N, first + batch))]
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, rows)
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
    print(
        f"{variant:14} page={page} batch={batch}: {N / elapsed:,.0f} rows/s, "
        f"{elapsed / N * 1e6:.1f} us/row",
        flush=True,
    )


if __name__ == "__main__":
    for spec in sys.argv[1:] or ["min-int:32:1024"]:
        variant, batch, page = spec.split(":")
        run(variant, int(batch), int(page))
