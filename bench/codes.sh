#!/usr/bin/env bash
# Codes: two figures, each a ratio against a baseline run in the same session
# on the same machine (embedded mode, release build, a fresh data dir).
#
#   bash bench/codes.sh
#
# 1. Generation: one job of COUNT codes (default 1,000,000) through the API,
#    timed from the 202 to `done` (polled), with the server's peak resident
#    memory during the job; against bench/codes_raw_insert.py writing COUNT
#    rows of the same shape into the same database file (same durability,
#    same statement, same rows per transaction) from one thread with no
#    server. Target: the job at >= 50% of the raw rate.
# 2. Redemption: wrk on POST /api/v1/codes/redeem with a shared code, against
#    wrk on the claim endpoint POST /api/v1/campaigns/{id}/issue, same users,
#    same settings, both durable. Target: >= 90%.
# 3. Timing of unknown codes: bench/code_timing.py interleaves 404s for random
#    codes and for near misses of real ones (last symbol changed) and
#    compares their latency (the guess limits are off for this server).
#
# Knobs (env): COUNT=1000000 DURATION=10s CONNECTIONS=64 THREADS=2 USERS=20000 WARMUP=2s
# A dated one-line summary is appended to bench-out/codes.log.
set -euo pipefail

COUNT="${COUNT:-1000000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
USERS="${USERS:-20000}"
WARMUP="${WARMUP:-2s}"
ROUND=5000 # codes per transaction: CODES_PER_ROUND in src/issuing/codes.rs

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LUA="$ROOT/bench/issue.lua"
OUT="$ROOT/bench-out"
LOG="$OUT/codes.log"
mkdir -p "$OUT"
BENCH_NAME=codes
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"

start_embedded FLASHCOUPON_CLAIM_RATE_PER_USER=0 FLASHCOUPON_CODE_GUESSES_PER_USER=0 \
    FLASHCOUPON_CODE_GUESSES_PER_ADDRESS=0

now_offset() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
campaign() { # ISSUANCE-FIELDS TOTAL -> id
    api POST /api/v1/campaigns "{\"name\":\"bench\",\"discount\":{\"type\":\"fixed\",\"amount\":1000},\
\"total_quantity\":$2,\"per_user_limit\":1000,\"issue_starts_at\":\"$(now_offset '-1 hour')\",\
\"issue_ends_at\":\"$(now_offset '+1 day')\",\"valid_days\":30$1}" | json_str id
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }

# --- 1. generation -------------------------------------------------------------
CODES_CAMPAIGN="$(campaign ',"issuance":"codes"' "$COUNT")"
RAW_CAMPAIGN="$(campaign ',"issuance":"codes"' "$COUNT")"
RSS_BEFORE="$(rss_kib)"
say "job: $COUNT codes"
started="$(date +%s.%N)"
JOB="$(api POST "/api/v1/campaigns/$CODES_CAMPAIGN/codes" "{\"count\":$COUNT}" | json_str id)"
peak="$RSS_BEFORE"
while :; do
    status="$(api GET "/api/v1/admin/jobs/$JOB" | json_str status)"
    rss="$(rss_kib)"
    ((rss > peak)) && peak="$rss"
    [[ "$status" == running ]] || break
    sleep 0.05
done
ended="$(date +%s.%N)"
[[ "$status" == done ]] || die "the job ended $status"
JOB_SECS="$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", b - a }')"
JOB_RATE="$(awk -v n="$COUNT" -v s="$JOB_SECS" 'BEGIN { printf "%.0f", n / s }')"
say "raw insert: $COUNT rows into the same database, one thread, no server"
RAW="$(python3 "$ROOT/bench/codes_raw_insert.py" "$DATA/flashcoupon.db" "$RAW_CAMPAIGN" "$COUNT" "$ROUND")"
RAW_RATE="$(sed -n 's/.*raw_rows_per_sec=\([0-9]*\).*/\1/p' <<<"$RAW")"
GEN_RATIO="$(awk -v a="$JOB_RATE" -v b="$RAW_RATE" 'BEGIN { printf "%.1f", 100 * a / b }')"
PEAK_DELTA_MIB="$(awk -v p="$peak" -v b="$RSS_BEFORE" 'BEGIN { printf "%.1f", (p - b) / 1024 }')"

# --- 2. redemption -------------------------------------------------------------
TOKENS="$WORK/tokens.txt"
provision_users "$USERS" "$TOKENS"
shuf -o "$TOKENS" "$TOKENS"
CLAIM_CAMPAIGN="$(campaign '' 1000000000)"
campaign ',"issuance":"shared_code","code":"BENCH-CODE"' 1000000000 >/dev/null
run_wrk() { # NAME URL [BODY]
    local args=("$TOKENS" "$THREADS")
    [[ -n "${3-}" ]] && args+=("$3")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$LUA" "$2" -- "${args[@]}" >/dev/null
    say "$1: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$LUA" "$2" -- "${args[@]}" | tee "$WORK/$1.wrk" >&2
    sed -n 's/.* rps=\([^ ]*\).*/\1/p' "$WORK/$1.wrk"
}
non201() { sed -n 's/.* non201=\([^ ]*\).*/\1/p' "$WORK/$1.wrk"; }
# Claim, redeem, claim again: the baseline is the mean of the runs either
# side, so a record that grows (or a machine that warms) favours neither.
CLAIM1_RPS="$(run_wrk claim "$FC/api/v1/campaigns/$CLAIM_CAMPAIGN/issue")"
REDEEM_RPS="$(run_wrk redeem "$FC/api/v1/codes/redeem" '{"code":"bench-code"}')"
CLAIM2_RPS="$(run_wrk claim2 "$FC/api/v1/campaigns/$CLAIM_CAMPAIGN/issue")"
CLAIM_RPS="$(awk -v a="$CLAIM1_RPS" -v b="$CLAIM2_RPS" 'BEGIN { printf "%.0f", (a + b) / 2 }')"
REDEEM_RATIO="$(awk -v a="$REDEEM_RPS" -v b="$CLAIM_RPS" 'BEGIN { printf "%.1f", 100 * a / b }')"

# --- 3. timing of unknown codes -------------------------------------------------
api GET "/api/v1/admin/campaigns/$CODES_CAMPAIGN/codes.csv" >"$WORK/codes.csv"
TIMING="$(python3 "$ROOT/bench/code_timing.py" "$ADDR" "$(head -n1 "$TOKENS")" "$WORK/codes.csv" 2000)"

cat >&2 <<REPORT

================ codes (embedded, release, $(nproc) cores) ================
generation   job: $COUNT codes in ${JOB_SECS} s = $JOB_RATE codes/s; peak RSS +${PEAK_DELTA_MIB} MiB over the idle server
             raw insert, same rows, same record: $RAW_RATE rows/s
             ratio job / raw = ${GEN_RATIO}%   (target >= 50%)
redemption   claim endpoint $(printf '%.0f' "$CLAIM1_RPS") then $(printf '%.0f' "$CLAIM2_RPS") req/s (non-201 $(non201 claim)/$(non201 claim2));
             shared code between them $(printf '%.0f' "$REDEEM_RPS") req/s (non-201 $(non201 redeem))
             ratio redeem / claim = ${REDEEM_RATIO}%   (target >= 90%)
unknown codes $TIMING
REPORT
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf '%s rev=%s count=%s job_secs=%s job_rate=%s raw_rate=%s gen_ratio=%s%% peak_rss_delta_mib=%s claim_rps=%.0f/%.0f redeem_rps=%.0f redeem_ratio=%s%% non201=%s/%s/%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rev" "$COUNT" "$JOB_SECS" "$JOB_RATE" "$RAW_RATE" "$GEN_RATIO" "$PEAK_DELTA_MIB" \
    "$CLAIM1_RPS" "$CLAIM2_RPS" "$REDEEM_RPS" "$REDEEM_RATIO" "$(non201 claim)" "$(non201 redeem)" "$(non201 claim2)" >>"$LOG"
echo "  $TIMING" >>"$LOG"
tail -n1 "$LOG" >&2
