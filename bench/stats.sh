#!/usr/bin/env bash
# Issue 18's two targets, measured in one run on this machine:
#
#   bash bench/stats.sh
#
# 1. The claim path with cluster-wide statistics on (each instance writes its
#    claim counts to the record every second, the default) against it with
#    them off (FLASHCOUPON_STATS_FLUSH_MS=0): ROUNDS alternating runs of each,
#    every run a fresh embedded server, USERS distinct users, wrk on
#    POST /campaigns/{id}/issue (bench/issue.lua). Target: on costs <= 5%.
# 2. A campaign summary read during a claim storm: wrk on the claims (as
#    above) and, at the same time, READERS connections reading
#    GET /admin/campaigns/{id}/summary (bench/summary.lua). Target: p99 <= 20 ms.
#
# Knobs (env): DURATION=10s CONNECTIONS=64 THREADS=2 USERS=20000 ROUNDS=2 READERS=4 SERVER_BIN
# (ROUNDS=0 measures only the summary reads.)
# A dated one-line summary is appended to bench-out/stats.log.
set -euo pipefail

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
USERS="${USERS:-20000}"
ROUNDS="${ROUNDS:-2}"
READERS="${READERS:-4}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/bench-out"
mkdir -p "$OUT"
BENCH_NAME=stats
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"

now_offset() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }

# serve [VAR=VALUE...]: a fresh embedded server with USERS users and a
# campaign of a billion coupons; sets FC, ADMIN_TOKEN, TOKENS, CAMPAIGN.
serve() {
    start_embedded FLASHCOUPON_CLAIM_RATE_PER_USER=0 "$@"
    TOKENS="$WORK/tokens.txt"
    provision_users "$USERS" "$TOKENS"
    shuf -o "$TOKENS" "$TOKENS"
    CAMPAIGN="$(api POST /api/v1/campaigns "{\"name\":\"bench\",\"discount\":{\"type\":\"fixed\",\"amount\":1000},\
\"total_quantity\":1000000000,\"per_user_limit\":1000,\"issue_starts_at\":\"$(now_offset '-1 hour')\",\
\"issue_ends_at\":\"$(now_offset '+1 day')\",\"valid_days\":30}" | json_str id)"
    [[ -n "$CAMPAIGN" ]] || die "campaign creation failed"
}

# claims NAME: warm-up 2 s, then DURATION of claims; the wrk output in $WORK/NAME.wrk.
claims() {
    local url="$FC/api/v1/campaigns/$CAMPAIGN/issue"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s bench/issue.lua "$url" -- "$TOKENS" "$THREADS" >/dev/null
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/issue.lua "$url" -- "$TOKENS" "$THREADS" \
        >"$WORK/$1.wrk"
    grep -q '^@@ ' "$WORK/$1.wrk" || die "no summary line from wrk"
    say "$1: $(field "$WORK/$1.wrk" rps) claims/s, p99 $(field "$WORK/$1.wrk" p99_ms) ms, non-201 $(field "$WORK/$1.wrk" non201)"
}

# --- 1. on against off ---------------------------------------------------------
ON=() OFF=()
for round in $(seq 1 "$ROUNDS"); do
    for mode in on off; do
        if [[ $mode == on ]]; then serve; else serve FLASHCOUPON_STATS_FLUSH_MS=0; fi
        claims "$mode-$round"
        rps="$(field "$WORK/$mode-$round.wrk" rps)"
        if [[ $mode == on ]]; then
            ON+=("$rps")
            # The record has the counts: every claim the server answered.
            sleep 1.5
            counted="$(api GET "/api/v1/admin/campaigns/$CAMPAIGN/summary" | grep -o '"claims":{[^}]*}')"
            say "on-$round: summary $counted"
        else
            OFF+=("$rps")
        fi
        stop_last
        rm -rf "$DATA"
    done
done
sum() { local s=0 v; for v in "$@"; do s="$(awk -v a="$s" -v b="$v" 'BEGIN { print a + b }')"; done; echo "$s"; }
ON_SUM="$(sum "${ON[@]}")" OFF_SUM="$(sum "${OFF[@]}")"
COST="$(awk -v on="$ON_SUM" -v off="$OFF_SUM" 'BEGIN { if (off > 0) printf "%.1f", 100 * (off - on) / off; else print "-" }')"
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ON_MED="$(median "${ON[@]}")" OFF_MED="$(median "${OFF[@]}")"
COST_MED="$(awk -v on="$ON_MED" -v off="$OFF_MED" 'BEGIN { if (off > 0) printf "%.1f", 100 * (off - on) / off; else print "-" }')"

# --- 2. summary reads during a storm ------------------------------------------
serve
claims warm-storm
url="$FC/api/v1/admin/campaigns/$CAMPAIGN/summary"
say "storm: claims on $CONNECTIONS connections, summary reads on $READERS, $DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/issue.lua \
    "$FC/api/v1/campaigns/$CAMPAIGN/issue" -- "$TOKENS" "$THREADS" >"$WORK/storm.wrk" &
STORM=$!
ADMIN_TOKEN="$ADMIN_TOKEN" wrk -t1 -c"$READERS" -d"$DURATION" --latency -s bench/summary.lua "$url" \
    >"$WORK/reads.wrk"
wait "$STORM"
STORM_RPS="$(field "$WORK/storm.wrk" rps)"
READ_RPS="$(field "$WORK/reads.wrk" rps)"
READ_P50="$(field "$WORK/reads.wrk" p50_ms)"
READ_P99="$(field "$WORK/reads.wrk" p99_ms)"
READ_BAD="$(field "$WORK/reads.wrk" non201)"
ISSUED="$(api GET "/api/v1/admin/campaigns/$CAMPAIGN/summary" | json_num issued)"

cat >&2 <<REPORT

================ statistics (embedded, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $USERS users) ================
claims, statistics on   ${ON[*]} claims/s
claims, statistics off  ${OFF[*]} claims/s
cost of on              ${COST}% of the claim rate by the sums, ${COST_MED}% by the medians (target <= 5%)
summary during a storm  ${READ_RPS} reads/s on $READERS connections, p50 ${READ_P50} ms, p99 ${READ_P99} ms (target <= 20 ms), non-200 ${READ_BAD}
                        while claims ran at ${STORM_RPS}/s; the campaign had ${ISSUED} coupons at the end
REPORT
printf '%s rev=%s on_rps=%s off_rps=%s cost_pct=%s cost_median_pct=%s storm_rps=%s summary_rps=%s summary_p50_ms=%s summary_p99_ms=%s summary_non200=%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$(IFS=,; echo "${ON[*]}")" "$(IFS=,; echo "${OFF[*]}")" \
    "$COST" "$COST_MED" "$STORM_RPS" "$READ_RPS" "$READ_P50" "$READ_P99" "$READ_BAD" >>"$OUT/stats.log"
tail -n1 "$OUT/stats.log" >&2
