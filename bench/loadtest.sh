#!/usr/bin/env bash
# The loadtest benchmarks against the embedded mode, on this machine:
#   1. seed-000: 10,000 users, 1,000 coupons, limit 3, 2 claims each, arrivals over 1 s;
#   2. max throughput: 10,000 users x 5 claims in one burst, stock enough for all.
# Builds release, starts a fresh server, runs both, leaves the reports in
# bench-out/loadtest-seed-000 and bench-out/loadtest-max, and appends a line
# per run to bench-out/loadtest.log. Exits non-zero if a promise was broken.
#
#   bash bench/loadtest.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/bench-out"
mkdir -p "$OUT"
cargo build --release -p flashcoupon --bin flashcoupon
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flashcoupon"

export FLASHCOUPON_ADMIN_EMAIL=bench-admin@example.com
export FLASHCOUPON_ADMIN_PASSWORD=bench-admin-password
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashcoupon-loadtest.XXXXXX")"
SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^flashcoupon listening on //p' "$WORK/server.out")"
[[ -n $URL ]] || { cat "$WORK/server.err"; exit 1; }

status=0
run() {
    local name=$1; shift
    echo "== $name: flashcoupon loadtest $*"
    "$BIN" loadtest --target "$URL" --out "$OUT/loadtest-$name" "$@" | tee "$WORK/$name.txt" || status=$?
    python3 - "$OUT/loadtest-$name/report.json" "$name" >>"$OUT/loadtest.log" <<'PY'
import json, sys, datetime, subprocess
r = json.load(open(sys.argv[1]))
rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
l = r['latency_ms']
print(f"{datetime.datetime.utcnow():%Y-%m-%dT%H:%M:%SZ} rev={rev} run={sys.argv[2]} requests={r['requests']} "
      f"rps={r['throughput_rps']:.0f} p50={l['p50']:.2f} p90={l['p90']:.2f} p99={l['p99']:.2f} p999={l['p999']:.2f} "
      f"max={l['max']:.2f} sold_out_after_ms={r['sold_out_after_ms']} errors={r['errors']} violations={len(r['violations'])}")
PY
}
run seed-000 --scenario seed-000
run max --users 10000 --claims-per-user 5 --limit 5 --stock 50000 --retry-share 0 --arrival burst --connections 256
tail -n 2 "$OUT/loadtest.log"
exit $status
