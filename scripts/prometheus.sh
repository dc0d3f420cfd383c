#!/usr/bin/env bash
# The monitoring in deploy/ proven against real parts: a real Prometheus
# (Debian's package, installed if missing) scrapes a real flashcoupon
# (embedded mode, publishing to the local RabbitMQ so the broker metrics are
# live) through a small drop and a poison message to each consumed queue
# (amqp-publish; it lands in the dead letters, which the consumer-lag gauge must report);
# every dashboard query and every alert rule's
# expression is then evaluated through Prometheus' HTTP API, and none may
# answer an error or name a metric the server does not export
# (scripts/prometheus_check.py). promtool checks the rules, the example
# configuration and the scraped /metrics text. Under a minute once built.
# Called by scripts/test.sh.
#
#   bash scripts/prometheus.sh
#   PROM_BIN=/tmp/flashcoupon bash scripts/prometheus.sh   # a binary built elsewhere
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v amqp-publish >/dev/null || missing+=(amqp-tools)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} from Debian (one-off)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
amqp_up() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' 2>/dev/null; }
amqp_up || bash scripts/services.sh

if [[ -n ${PROM_BIN:-} ]]; then
    BIN=$PROM_BIN
else
    cargo build --bin flashcoupon
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/flashcoupon"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashcoupon-prometheus.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> promtool check rules / check config"
promtool check rules deploy/prometheus/alerts.yml
promtool check config deploy/prometheus/prometheus.yml

# The queues of a namespace of its own (the same every run, emptied first:
# nothing piles up in the broker), so the test consumes nobody's messages.
NS=flashcoupon-prometheus-test
for q in "$NS".{payments,triggers}{,.dead}; do $SUDO rabbitmqctl -q purge_queue "$q" >/dev/null 2>&1 || true; done
export AMQP_URL='amqp://guest:guest@127.0.0.1:5672/%2f' AMQP_NAMESPACE=$NS
export FLASHCOUPON_ADMIN_EMAIL=prometheus-admin@example.com
export FLASHCOUPON_ADMIN_PASSWORD=prometheus-admin-password
RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" \
    --amqp-url "$AMQP_URL" --amqp-namespace "$NS" \
    >"$WORK/server.out" 2>"$WORK/server.err" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^flashcoupon listening on //p' "$WORK/server.out")"
[[ -n $URL ]] || { echo "the server did not start:"; cat "$WORK/server.err"; exit 1; }

# Prometheus on a free port, scraping the server every second and
# evaluating deploy/'s rules as often, job `flashcoupon` as the rules expect.
PROM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: flashcoupon
    static_configs:
      - targets: ["${URL#http://}"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 1 100); do curl -fs "$PROM/-/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "$PROM/-/ready" >/dev/null || { echo "Prometheus did not start:"; cat "$WORK/prometheus.log"; exit 1; }
echo "==> flashcoupon at $URL, Prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3) at $PROM"

status=0
echo "==> a drop, then every dashboard query and alert rule through Prometheus"
python3 scripts/prometheus_check.py "$URL" "$PROM" deploy/grafana/flashcoupon.json \
    deploy/prometheus/alerts.yml "$WORK/metrics.txt" || status=1
echo "==> promtool check metrics on the server's /metrics"
if [[ -s $WORK/metrics.txt ]] && promtool check metrics <"$WORK/metrics.txt"; then
    echo "    clean"
else
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "==> server log (stderr):"; tail -20 "$WORK/server.err"
    echo "==> Prometheus log:"; tail -20 "$WORK/prometheus.log"
fi
exit "$status"
