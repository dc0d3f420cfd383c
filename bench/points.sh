#!/usr/bin/env bash
# Points: spend transactions per second through the API, on distinct users
# and on one hot user, each against the record's own ceiling for the same
# transaction in the same run (embedded mode, release build, a fresh data
# dir, durable: synchronous=FULL, one fsync per spend).
#
#   bash bench/points.sh
#
# 1. USERS shoppers each earn EARN points (through the API, a service key).
# 2. wrk with bench/points.lua: POST /api/v1/users/{id}/points/spend, 1 point,
#    a fresh reference each, round the users (distinct) — then all on the
#    first user (hot). Each spend is one transaction of the ledger: the
#    account row locked, the entry chained, the earliest lot taken from.
# 3. bench/points_raw.py: the same statements straight into the same
#    database file from one thread, no server — the record's ceiling for the
#    same transaction, for the same two shapes: one transaction per spend
#    (the ledger write alone), and 16 per transaction in savepoints (the
#    shape the points group commit writes, src/points/writer.rs).
# Target: the API at >= 50% of the raw rate, both shapes.
#
# Knobs (env): USERS=2000 EARN=1000000 DURATION=10s CONNECTIONS=64 THREADS=2
#              RAW=3000 (spends per raw run) WARMUP=2s
# A dated one-line summary is appended to bench-out/points.log.
set -euo pipefail

USERS="${USERS:-2000}"
EARN="${EARN:-1000000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
RAW="${RAW:-3000}"
WARMUP="${WARMUP:-2s}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LUA="$ROOT/bench/points.lua"
OUT="$ROOT/bench-out"
LOG="$OUT/points.log"
mkdir -p "$OUT"
BENCH_NAME=points
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"

start_embedded
KEY="$(api POST /api/v1/admin/api-keys '{"name":"bench shop"}' | json_str key)"
[[ -n "$KEY" ]] || die "no service key"

say "flashcoupon: $USERS users, $EARN points each"
USERS_FILE="$WORK/users.txt"
api POST /api/v1/admin/users/bulk \
    "{\"count\":$USERS,\"email_prefix\":\"points\",\"password\":\"password-123\"}" \
    | grep -o '"user_id":"[^"]*"' | cut -d'"' -f4 >"$USERS_FILE"
[[ "$(wc -l <"$USERS_FILE")" == "$USERS" ]] || die "expected $USERS users"
while read -r user; do
    printf '{"amount":%s,"reference":"seed","reason":"bench"}\n' "$EARN" >"$WORK/earn.json"
    curl -sS --fail-with-body -o /dev/null -X POST "$FC/api/v1/users/$user/points/earn" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data @"$WORK/earn.json"
done <"$USERS_FILE"
HOT_FILE="$WORK/hot.txt"
head -n1 "$USERS_FILE" >"$HOT_FILE"

# The server's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
run_wrk() { # NAME USERS_FILE
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$LUA" "$FC" -- "$2" "$KEY" "$THREADS" "$1-warm" >/dev/null
    say "$1: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
    local before after
    before="$(cpu_ticks)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$LUA" "$FC" -- "$2" "$KEY" "$THREADS" "$1" \
        | tee "$WORK/$1.wrk" >&2
    after="$(cpu_ticks)"
    # The server's share of the machine during the run, in % of one core.
    awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" -v d="${DURATION%s}" \
        'BEGIN { printf "%.0f", 100 * (a - b) / hz / d }' >"$WORK/$1.cpu"
    sed -n 's/.* rps=\([^ ]*\).*/\1/p' "$WORK/$1.wrk"
}
field() { sed -n "s/.* $2=\\([^ ]*\\).*/\\1/p" "$WORK/$1.wrk"; }
raw() { # USERS_FILE RUN [BATCH]
    python3 "$ROOT/bench/points_raw.py" "$DATA/flashcoupon.db" "$1" "$RAW" "$2" "${3:-1}" | sed -n 's/.*raw_spends_per_sec=\([0-9]*\).*/\1/p'
}

# Raw, API, raw again for each shape: the baseline is the mean of the runs
# either side, so a record that grows (or a machine that warms) favours
# neither.
say "raw: $RAW spends round the users, one thread, no server"
RAW_D1="$(raw "$USERS_FILE" raw-d1)"
DISTINCT_RPS="$(run_wrk distinct "$USERS_FILE")"
RAW_D2="$(raw "$USERS_FILE" raw-d2)"
RAW_DB="$(raw "$USERS_FILE" raw-db 16)"
say "raw: $RAW spends on the hot user"
RAW_H1="$(raw "$HOT_FILE" raw-h1)"
HOT_RPS="$(run_wrk hot "$HOT_FILE")"
RAW_H2="$(raw "$HOT_FILE" raw-h2)"
RAW_HB="$(raw "$HOT_FILE" raw-hb 16)"
RAW_D="$(awk -v a="$RAW_D1" -v b="$RAW_D2" 'BEGIN { printf "%.0f", (a + b) / 2 }')"
RAW_H="$(awk -v a="$RAW_H1" -v b="$RAW_H2" 'BEGIN { printf "%.0f", (a + b) / 2 }')"
D_RATIO="$(awk -v a="$DISTINCT_RPS" -v b="$RAW_D" 'BEGIN { printf "%.1f", 100 * a / b }')"
H_RATIO="$(awk -v a="$HOT_RPS" -v b="$RAW_H" 'BEGIN { printf "%.1f", 100 * a / b }')"
DB_RATIO="$(awk -v a="$DISTINCT_RPS" -v b="$RAW_DB" 'BEGIN { printf "%.1f", 100 * a / b }')"
HB_RATIO="$(awk -v a="$HOT_RPS" -v b="$RAW_HB" 'BEGIN { printf "%.1f", 100 * a / b }')"

# The ledger still adds up after it all (promise 9): the hot user's balance
# is the sum of its entries, and what was spent is what the API said.
HOT_USER="$(cat "$HOT_FILE")"
CHECK="$(python3 - "$DATA/flashcoupon.db" "$HOT_USER" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
total, n = c.execute("SELECT SUM(amount), COUNT(*) FROM point_entries WHERE user_id = ?", (sys.argv[2],)).fetchone()
balance = c.execute("SELECT balance FROM point_accounts WHERE user_id = ?", (sys.argv[2],)).fetchone()[0]
lots = c.execute("SELECT SUM(remaining) FROM point_lots WHERE user_id = ?", (sys.argv[2],)).fetchone()[0]
bad = c.execute("SELECT COUNT(*) FROM point_accounts WHERE balance < 0").fetchone()[0]
print(f"hot user: {n} entries, sum {total}, balance {balance}, lots {lots}; negative balances {bad}")
assert total == balance == lots and bad == 0
PY
)" || die "the ledger does not add up: $CHECK"

cat >&2 <<REPORT

================ points (embedded, release, durable, $(nproc) cores) ================
distinct users  API $(printf '%.0f' "$DISTINCT_RPS") spends/s (p50 $(field distinct p50_ms) ms, p99 $(field distinct p99_ms) ms, non-201 $(field distinct non201); server CPU $(cat "$WORK/distinct.cpu")% of a core)
                record's ceiling (raw, one thread) $RAW_D1 then $RAW_D2 spends/s, one a transaction
                ratio API / raw = ${D_RATIO}%   (target >= 50%)
                batched ceiling (16 a transaction, savepoints) $RAW_DB spends/s: API at ${DB_RATIO}%
one hot user    API $(printf '%.0f' "$HOT_RPS") spends/s (p50 $(field hot p50_ms) ms, p99 $(field hot p99_ms) ms, non-201 $(field hot non201); server CPU $(cat "$WORK/hot.cpu")% of a core)
                record's ceiling (raw, one thread) $RAW_H1 then $RAW_H2 spends/s, one a transaction
                ratio API / raw = ${H_RATIO}%   (target >= 50%)
                batched ceiling (16 a transaction, savepoints) $RAW_HB spends/s: API at ${HB_RATIO}%
check           $CHECK
REPORT
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf '%s rev=%s distinct_rps=%.0f raw_distinct=%s/%s distinct_ratio=%s%% raw_distinct_batched=%s batched_ratio=%s%% hot_rps=%.0f raw_hot=%s/%s hot_ratio=%s%% raw_hot_batched=%s batched_ratio=%s%% non201=%s/%s cpu=%s/%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rev" "$DISTINCT_RPS" "$RAW_D1" "$RAW_D2" "$D_RATIO" "$RAW_DB" "$DB_RATIO" \
    "$HOT_RPS" "$RAW_H1" "$RAW_H2" "$H_RATIO" "$RAW_HB" "$HB_RATIO" "$(field distinct non201)" "$(field hot non201)" \
    "$(cat "$WORK/distinct.cpu")" "$(cat "$WORK/hot.cpu")" >>"$LOG"
tail -n1 "$LOG" >&2
