#!/usr/bin/env bash
# Time-sale orders against coupon claims, in the same run on the same
# server (embedded mode, release build, fresh data dir, durable): the order
# path is the claim path (the same gate, a group commit of its own) plus an
# order row, so the figure that matters is the ratio.
#
#   bash bench/sales.sh
#
# USERS shoppers (bulk endpoint), one campaign and one sale, each with a
# per-user limit high enough that every user can claim and order many times;
# wrk with bench/issue.lua, every request from the next user:
#   claim   POST /api/v1/campaigns/{id}/issue                  (the baseline)
#   order   POST /api/v1/sales/{id}/orders, no body            (target >= 80% of claim)
#   extras  the same with {"coupon_id", "points": 100}: one of the user's
#           coupons (from the claim runs) reserved and 100 points held in
#           the order's own step                               (target >= 50% of claim)
#   claim   again: the baseline is the mean of the two claim runs.
# Afterwards the record is checked: orders holding a unit have seqs 1..n,
# every extras order has its coupon reserved and its points held.
#
# Knobs (env): USERS=2000 DURATION=10s CONNECTIONS=64 THREADS=2 WARMUP=2s
#   PERF_RUN=extras (or claim1, order, claim2): `perf record -g` the server
#   during that run, into bench-out/sales-<run>.perf
# A dated one-line summary is appended to bench-out/sales.log.
set -euo pipefail

USERS="${USERS:-2000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-2s}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LUA="$ROOT/bench/issue.lua"
OUT="$ROOT/bench-out"
LOG="$OUT/sales.log"
mkdir -p "$OUT"
BENCH_NAME=sales
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 is missing"

start_embedded FLASHCOUPON_CLAIM_RATE_PER_USER=0
KEY="$(api POST /api/v1/admin/api-keys '{"name":"bench shop"}' | json_str key)"
[[ -n "$KEY" ]] || die "no service key"
say "flashcoupon: $USERS users"
api POST /api/v1/admin/users/bulk \
    "{\"count\":$USERS,\"email_prefix\":\"sales\",\"password\":\"password-123\"}" \
    | python3 -c 'import json, sys
for u in json.load(sys.stdin)["users"]: print(u["user_id"], u["token"])' >"$WORK/users.txt"
[[ "$(wc -l <"$WORK/users.txt")" == "$USERS" ]] || die "expected $USERS users"
cut -d' ' -f2 "$WORK/users.txt" >"$WORK/tokens.txt"
while read -r user _; do
    curl -sS --fail-with-body -o /dev/null -X POST "$FC/api/v1/users/$user/points/earn" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data '{"amount":1000000000,"reference":"seed","reason":"bench"}'
done <"$WORK/users.txt"

NOW="$(date -u +%s)"
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
CAMPAIGN="$(api POST /api/v1/campaigns "{\"name\":\"bench coupons\",\"discount\":{\"type\":\"fixed\",\"amount\":1000},
  \"total_quantity\":100000000,\"per_user_limit\":1000,\"issue_starts_at\":\"$(iso $((NOW - 60)))\",
  \"issue_ends_at\":\"$(iso $((NOW + 86400)))\",\"valid_days\":30}" | json_str id)"
SALE="$(api POST /api/v1/sales "{\"name\":\"bench sale\",\"product\":{\"sku\":\"B-1\",\"name\":\"Bench\",\"list_price\":20000},
  \"sale_price\":10000,\"total_quantity\":100000000,\"per_user_limit\":1000,\"starts_at\":\"$(iso $((NOW - 60)))\",
  \"ends_at\":\"$(iso $((NOW + 86400)))\",\"payment_ttl_secs\":86400}" | json_str id)"
[[ -n "$CAMPAIGN" && -n "$SALE" ]] || die "set-up failed"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
run_wrk() { # NAME URL LINES_FILE [WARMUP_LINES_FILE]
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$LUA" "$2" -- "${4:-$3}" "$THREADS" >/dev/null
    say "$1: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
    local before after perf_pid=""
    if [[ -n "${PERF_RUN:-}" && "$1" == "$PERF_RUN" ]]; then
        # A profile of the server during this run (PERF_RUN=extras, say).
        perf record -F 499 -g -p "$SERVER_PID" -o "$OUT/sales-$1.perf" -- sleep "${DURATION%s}" \
            >/dev/null 2>&1 &
        perf_pid=$!
    fi
    before="$(cpu_ticks)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$LUA" "$2" -- "$3" "$THREADS" \
        | tee "$WORK/$1.wrk" >&2
    after="$(cpu_ticks)"
    [[ -z "$perf_pid" ]] || wait "$perf_pid" || true
    awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" -v d="${DURATION%s}" \
        'BEGIN { printf "%.0f", 100 * (a - b) / hz / d }' >"$WORK/$1.cpu"
    sed -n 's/.* rps=\([^ ]*\).*/\1/p' "$WORK/$1.wrk"
}
field() { sed -n "s/.* $2=\\([^ ]*\\).*/\\1/p" "$WORK/$1.wrk"; }

CLAIM_URL="$FC/api/v1/campaigns/$CAMPAIGN/issue"
ORDER_URL="$FC/api/v1/sales/$SALE/orders"
CLAIM1="$(run_wrk claim1 "$CLAIM_URL" "$WORK/tokens.txt")"
ORDER="$(run_wrk order "$ORDER_URL" "$WORK/tokens.txt")"
# One line per coupon the claim run issued: its owner's token and the
# coupon, each used once (more lines than an extras run can send).
python3 - "$DATA/flashcoupon.db" "$WORK/users.txt" "$CAMPAIGN" >"$WORK/extras.txt" <<'PY'
import sqlite3, sys
tokens = dict(line.split() for line in open(sys.argv[2]))
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = c.execute("SELECT id, user_id FROM coupons WHERE campaign_id = ? AND status = 'available' ORDER BY seq",
                 (sys.argv[3],)).fetchall()
for coupon, user in rows:
    print(f'{tokens[user]}\t{{"coupon_id":"{coupon}","points":100}}')
PY
# The warm-up gets coupons of its own: a coupon ordered with twice is a 409.
head -n 10000 "$WORK/extras.txt" >"$WORK/extras-warm.txt"
tail -n +10001 "$WORK/extras.txt" >"$WORK/extras-run.txt"
say "extras: $(wc -l <"$WORK/extras-run.txt") coupons to order with"
EXTRAS="$(run_wrk extras "$ORDER_URL" "$WORK/extras-run.txt" "$WORK/extras-warm.txt")"
CLAIM2="$(run_wrk claim2 "$CLAIM_URL" "$WORK/tokens.txt")"
CLAIM="$(awk -v a="$CLAIM1" -v b="$CLAIM2" 'BEGIN { printf "%.0f", (a + b) / 2 }')"
O_RATIO="$(awk -v a="$ORDER" -v b="$CLAIM" 'BEGIN { printf "%.1f", 100 * a / b }')"
E_RATIO="$(awk -v a="$EXTRAS" -v b="$CLAIM" 'BEGIN { printf "%.1f", 100 * a / b }')"

sleep 0.5 # orders still in flight when wrk stopped commit
CHECK="$(python3 - "$DATA/flashcoupon.db" "$SALE" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
seqs = [r[0] for r in c.execute("SELECT seq FROM orders WHERE sale_id = ? AND status = 'pending_payment' ORDER BY seq", (sys.argv[2],))]
assert seqs == list(range(1, len(seqs) + 1)), "seqs are not 1..n"
extras = c.execute("SELECT COUNT(*) FROM orders WHERE sale_id = ? AND coupon_id IS NOT NULL", (sys.argv[2],)).fetchone()[0]
held = c.execute("SELECT COUNT(*) FROM coupon_holds WHERE state = 'held'").fetchone()[0]
points = c.execute("SELECT COUNT(*) FROM point_holds WHERE state = 'held'").fetchone()[0]
assert extras == held == points, f"{extras} orders with extras, {held} coupon holds, {points} points holds"
print(f"{len(seqs)} orders, seqs 1..{len(seqs)}; {extras} with a coupon and points, each held once")
PY
)" || die "the record does not add up: $CHECK"

cat >&2 <<REPORT

================ sales (embedded, release, durable, $(nproc) cores, $USERS users) ================
claim (baseline) $CLAIM1 then $CLAIM2 req/s (p99 $(field claim1 p99_ms) / $(field claim2 p99_ms) ms)
order            $(printf '%.0f' "$ORDER") req/s (p50 $(field order p50_ms) ms, p99 $(field order p99_ms) ms, non-201 $(field order non201) $(field order statuses); server CPU $(cat "$WORK/order.cpu")% of a core)
                 ratio order / claim = ${O_RATIO}%   (target >= 80%)
coupon + points  $(printf '%.0f' "$EXTRAS") req/s (p50 $(field extras p50_ms) ms, p99 $(field extras p99_ms) ms, non-201 $(field extras non201) $(field extras statuses); server CPU $(cat "$WORK/extras.cpu")% of a core)
                 ratio extras / claim = ${E_RATIO}%   (target >= 50%)
check            $CHECK
REPORT
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf '%s rev=%s claim_rps=%s/%s order_rps=%.0f order_ratio=%s%% extras_rps=%.0f extras_ratio=%s%% non201=%s/%s/%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rev" "$CLAIM1" "$CLAIM2" "$ORDER" "$O_RATIO" "$EXTRAS" "$E_RATIO" \
    "$(field claim1 non201)" "$(field order non201)" "$(field extras non201)" >>"$LOG"
tail -n1 "$LOG" >&2
