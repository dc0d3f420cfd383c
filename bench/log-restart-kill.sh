#!/usr/bin/env bash
# A manual durability check (not a benchmark, not run by .ci/run): a claim
# storm long enough for the write-ahead log to start over a few times
# (store/sqlite/log.rs), then `kill -9` of the server mid-storm. Every 201
# wrk saw must be in the record, seqs 1..n, and SQLite's integrity check
# must pass. The automated crash tests (tests/api/crash.rs) never write the
# 270 MB it takes to reach a restart.
#
#   bash bench/log-restart-kill.sh        # knobs: SERVER_BIN, KILL_AFTER=9
#
# It prints how many restarts the server logged before the kill.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; cd "$ROOT"
BENCH_NAME=kill; source "$ROOT/bench/lib.sh"
start_embedded FLASHCOUPON_CLAIM_RATE_PER_USER=0 RUST_LOG="warn,flashcoupon::store::sqlite=debug"
provision_users 20000 "$WORK/tokens.txt"
shuf -o "$WORK/tokens.txt" "$WORK/tokens.txt"
now_offset() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
CAMPAIGN="$(api POST /api/v1/campaigns "{\"name\":\"kill\",\"discount\":{\"type\":\"fixed\",\"amount\":1000},\"total_quantity\":1000000000,\"per_user_limit\":1000,\"issue_starts_at\":\"$(now_offset '-1 hour')\",\"issue_ends_at\":\"$(now_offset '+1 day')\",\"valid_days\":30}" | json_str id)"
wrk -t2 -c64 -d15s -s bench/issue.lua "$FC/api/v1/campaigns/$CAMPAIGN/issue" -- "$WORK/tokens.txt" 2 >"$WORK/wrk.out" 2>&1 &
WRK=$!
sleep "${KILL_AFTER:-9}"
kill -9 "$SERVER_PID"
wait "$WRK" || true
grep '^@@' "$WORK/wrk.out"
echo "restarts before the kill: $(grep -c 'starts over' "$WORK/flashcoupon.err")"
ls -la "$DATA"
python3 - "$DATA/flashcoupon.db" "$CAMPAIGN" "$WORK/wrk.out" <<'PY'
import sqlite3, sys, re
c = sqlite3.connect(sys.argv[1])
print("integrity:", c.execute("PRAGMA integrity_check").fetchone()[0])
n = c.execute("SELECT COUNT(*) FROM coupons WHERE campaign_id = ?", (sys.argv[2],)).fetchone()[0]
seqs = [r[0] for r in c.execute("SELECT seq FROM coupons WHERE campaign_id = ? ORDER BY seq", (sys.argv[2],))]
line = [l for l in open(sys.argv[3]) if l.startswith('@@')][0]
req = int(re.search(r'requests=(\d+)', line).group(1)); non = int(re.search(r'non201=(\d+)', line).group(1))
print(f"coupons in the record: {n}; 201s wrk saw: {req - non}; seqs 1..n: {seqs == list(range(1, n + 1))}")
assert n >= req - non, "a 201 is missing"
assert seqs == list(range(1, n + 1)), "seqs are not 1..n"
PY
