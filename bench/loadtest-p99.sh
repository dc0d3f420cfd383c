#!/usr/bin/env bash
# Where the loadtests' p99 goes: the client-side latency `flashcoupon
# loadtest` reports next to the server-side one (the per-route histogram of
# /metrics over the run), for seed-000 (a coupon drop) and time-sale (a
# sale's orders and payments), on one fresh embedded server, in one session.
# If the server answers in a few ms while the client waits 100+, the p99 is
# the queue in front of the server on two shared cores (the generator's CPU
# included), not the claim or order path.
#
#   bash bench/loadtest-p99.sh        # knobs: SERVER_CPUS, DRIVER_CPUS (taskset lists)
#
# A line per run is appended to bench-out/loadtest-p99.log.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/bench-out"
mkdir -p "$OUT"
if [[ -z "${SERVER_BIN:-}" ]]; then
    cargo build --release -p flashcoupon --bin flashcoupon
    SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flashcoupon"
fi
PIN_SERVER=()
PIN_DRIVER=()
[[ -n "${SERVER_CPUS:-}" ]] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
[[ -n "${DRIVER_CPUS:-}" ]] && PIN_DRIVER=(taskset -c "$DRIVER_CPUS")

BENCH_NAME=loadtest-p99
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export FLASHCOUPON_ADMIN_EMAIL=bench-admin@example.com
export FLASHCOUPON_ADMIN_PASSWORD=bench-admin-password
FLASHCOUPON_TEST_PAYMENTS=true RUST_LOG=warn \
    start flashcoupon "flashcoupon listening on http://" \
    "${PIN_SERVER[@]}" "$SERVER_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data"
URL="http://$ADDR"

status=0
run() {
    local name=$1 route=$2
    shift 2
    curl -s "$URL/metrics" >"$WORK/$name.before"
    echo "== $name: flashcoupon loadtest $*"
    "${PIN_DRIVER[@]}" "$SERVER_BIN" loadtest --target "$URL" --out "$WORK/$name" "$@" \
        >"$WORK/$name.txt" || status=$?
    curl -s "$URL/metrics" >"$WORK/$name.after"
    python3 - "$WORK/$name/report.json" "$WORK/$name.before" "$WORK/$name.after" "$route" "$name" \
        "${SERVER_CPUS:-all}/${DRIVER_CPUS:-all}" "$(basename "$SERVER_BIN")" <<'PY' | tee -a "$OUT/loadtest-p99.log" || status=1
import datetime, json, re, subprocess, sys
report, before, after, route, name, cpus, binary = sys.argv[1:]
r = json.load(open(report))
def buckets(path):
    out = {}
    pat = re.compile(r'^flashcoupon_http_request_duration_seconds_bucket\{(.*)\} (\S+)$')
    for line in open(path):
        m = pat.match(line.strip())
        if not m: continue
        labels = dict(kv.split('=', 1) for kv in m.group(1).split(','))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get('route') != route or labels.get('method') != 'POST': continue
        le = float('inf') if labels['le'] == '+Inf' else float(labels['le'])
        out[le] = out.get(le, 0) + float(m.group(2))
    return out
b, a = buckets(before), buckets(after)
run = sorted((le, a[le] - b.get(le, 0)) for le in a)
total = run[-1][1] if run else 0
def quantile(q):
    # Linear within the bucket, as Prometheus' histogram_quantile does.
    want, lo, below = q * total, 0.0, 0.0
    for le, n in run:
        if n >= want:
            if le == float('inf'): return lo * 1000
            return (lo + (le - lo) * ((want - below) / max(n - below, 1e-9))) * 1000
        lo, below = le, n
    return float('nan')
rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
lat = r.get('latency_ms') or r.get('order_latency_ms') or {}
client = f"p50={lat.get('p50', float('nan')):.1f} p99={lat.get('p99', float('nan')):.1f}" if lat else "see report"
print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%SZ} rev={rev} bin={binary} run={name} cpus={cpus} "
      f"client_ms[{client}] server_ms[p50={quantile(0.5):.1f} p99={quantile(0.99):.1f} n={total:.0f}] "
      f"violations={len(r.get('violations', []))}")
PY
}
run seed-000 "/api/v1/campaigns/{id}/issue" --scenario seed-000
run time-sale "/api/v1/sales/{id}/orders" --scenario time-sale
exit $status
