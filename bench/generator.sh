#!/usr/bin/env bash
# The loadtest generator against wrk, both firing at the bare axum baseline
# (crates/flashcoupon/examples/bare_baseline.rs) in the same run: issue 17's
# target is the generator at >= 50% of wrk's rate. The generator side is
# examples/shooter_rate.rs, which drives `flashcoupon loadtest`'s own storm
# client (loadtest::client::Shooter) in a closed loop. Both send the same
# request: POST, a 200-character bearer token, an Idempotency-Key, no body.
#
#   bash bench/generator.sh    # knobs: CONNECTIONS=64 RUN_SECS=10 THREADS=2
#
# A line per run is appended to bench-out/generator.log.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONNECTIONS="${CONNECTIONS:-64}"
SECONDS_RUN="${RUN_SECS:-10}"
THREADS="${THREADS:-2}"
OUT="$ROOT/bench-out"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$OUT"
BENCH_NAME=generator
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
cargo build --release -p flashcoupon --example bare_baseline --example shooter_rate

start baseline "bare baseline listening on http://" "$TARGET/release/examples/bare_baseline" 127.0.0.1:0
URL="http://$ADDR/issue"
TOKEN="$(printf 'x%.0s' $(seq 1 200))"
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Idempotency-Key"] = "shooter-rate"
LUA

say "wrk: warm-up 2 s, then -t$THREADS -c$CONNECTIONS -d${SECONDS_RUN}s"
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/post.lua" "$URL" >/dev/null
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" -s "$WORK/post.lua" "$URL" | tee "$WORK/wrk.txt" >&2
WRK_RPS="$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.txt")"
grep -q "Non-2xx" "$WORK/wrk.txt" && die "wrk saw non-2xx answers"

say "generator: warm-up 2 s, then $CONNECTIONS in flight for ${SECONDS_RUN} s"
"$TARGET/release/examples/shooter_rate" "$URL" --connections "$CONNECTIONS" --seconds "$SECONDS_RUN" \
    | tee "$WORK/shooter.txt" >&2
GEN_RPS="$(sed -n 's/^shooter_rps=//p' "$WORK/shooter.txt")"
RATIO="$(awk -v g="$GEN_RPS" -v w="$WRK_RPS" 'BEGIN { printf "%.1f", w ? 100 * g / w : 0 }')"

cat >&2 <<REPORT

================ the generator vs wrk, both against bare axum ================
wrk        $(printf '%10.0f' "$WRK_RPS") req/s
generator  $(printf '%10.0f' "$GEN_RPS") req/s   = ${RATIO}% of wrk   (target >= 50%)
REPORT
printf '%s rev=%s connections=%s seconds=%s wrk_rps=%.0f generator_rps=%.0f ratio=%s%%\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$CONNECTIONS" "$SECONDS_RUN" \
    "$WRK_RPS" "$GEN_RPS" "$RATIO" >>"$OUT/generator.log"
