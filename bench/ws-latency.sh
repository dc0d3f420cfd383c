#!/usr/bin/env bash
# Push latency with 10,000 connected notification sockets on one instance,
# against a baseline with only the claimers connected, in the same run.
#
#   bash bench/ws-latency.sh
#
# For each run a fresh embedded server starts (release build, fresh data dir;
# the connection caps are lifted: every client here shares 127.0.0.1)
# and crates/flashcoupon/examples/ws_latency.rs opens CLIENTS sockets, then
# has CLAIMS of those users claim one coupon each at RATE claims/s, timing
# "claim sent -> coupon.issued received" (an upper bound of commit -> client).
#   baseline: CLIENTS=CLAIMS (only the claimers are connected)
#   measured: CLIENTS=10000
# Knobs (env): CLIENTS=10000 CLAIMS=1000 RATE=500
# A dated summary is appended to bench-out/ws-latency.log.
set -euo pipefail

CLIENTS="${CLIENTS:-10000}"
CLAIMS="${CLAIMS:-1000}"
RATE="${RATE:-500}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/bench-out"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$OUT"
say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'ws-latency: %s\n' "$*" >&2; exit 1; }

# Each side holds CLIENTS sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) > CLIENTS + 1000)) || die "open-file limit $(ulimit -n) is too low for $CLIENTS sockets"

say "building (release)"
cargo build --release -p flashcoupon --bin flashcoupon --example ws_latency
SERVER_BIN="$TARGET/release/flashcoupon"
CLIENT_BIN="$TARGET/release/examples/ws_latency"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashcoupon-ws.XXXXXX")"
SERVER=""
cleanup() {
    [[ -z "$SERVER" ]] || { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT

ADMIN_EMAIL="bench-admin@bench.invalid"
ADMIN_PASSWORD="bench-admin-password"

# run NAME CLIENTS: a fresh server, one measurement; the JSON line goes to $WORK/NAME.json
run() {
    local name="$1" clients="$2" line=""
    rm -rf "$WORK/data"
    FLASHCOUPON_ADMIN_EMAIL="$ADMIN_EMAIL" FLASHCOUPON_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
        FLASHCOUPON_CLAIM_RATE_PER_USER=0 RUST_LOG="${RUST_LOG:-warn}" \
        FLASHCOUPON_MAX_CONNECTIONS=0 FLASHCOUPON_MAX_CONNECTIONS_PER_ADDRESS=0 \
        FLASHCOUPON_MAX_SOCKETS_WAITING=0 \
        "$SERVER_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER="$!"
    for _ in $(seq 1 300); do
        line="$(grep -m1 'listening on http://' "$WORK/server.out" 2>/dev/null || true)"
        [[ -n "$line" ]] && break
        sleep 0.1
    done
    [[ -n "$line" ]] || { cat "$WORK/server.err" >&2; die "the server did not start"; }
    say "$name: $clients sockets, $CLAIMS claims at $RATE/s"
    "$CLIENT_BIN" --base "http://${line##*http://}" --admin-email "$ADMIN_EMAIL" \
        --admin-password "$ADMIN_PASSWORD" --clients "$clients" --claims "$CLAIMS" --rate "$RATE" \
        | tee "$WORK/$name.json"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
}

run baseline "$CLAIMS"
run measured "$CLIENTS"

p99() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent_to_push_ms"]["p99"])' "$1"; }
missing() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pushes_missing"])' "$1"; }
B="$(p99 "$WORK/baseline.json")"
M="$(p99 "$WORK/measured.json")"
RATIO="$(python3 -c "print(f'{$M / max($B, 0.001):.2f}')")"
VERDICT="$(python3 -c "print('met' if $M <= 50 else 'NOT met')")"
SUMMARY="$(date -u +%FT%TZ) ws-latency clients=$CLIENTS claims=$CLAIMS rate=$RATE baseline_p99_ms=$B measured_p99_ms=$M ratio=$RATIO missing=$(missing "$WORK/measured.json") target_p99<=50ms:$VERDICT"
echo "$SUMMARY" | tee -a "$OUT/ws-latency.log"
