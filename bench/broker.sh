#!/usr/bin/env bash
# Checkout over RabbitMQ (issue 13), in one run on one machine:
#   - payment events consumed end to end (published -> effect committed ->
#     acked) per second, against RabbitMQ's own publish -> consume rate with
#     a no-op consumer (same message size, count and prefetch): the ratio;
#   - outbox lag (coupon.issued: admission -> received off the exchange)
#     p50/p99/max under a claim storm (at once, or paced at RATE claims/s).
# Embedded mode by default; MODE=scale-out for Redis + PostgreSQL.
#
#   bash bench/broker.sh
#   MODE=scale-out EVENTS=5000 CLAIMS=5000 bash bench/broker.sh
#   RATE=2000 bash bench/broker.sh    # the storm paced at 2,000 claims/s (0: at once)
#   SERVER_BIN=/tmp/fc-old PREFETCH=256 bash bench/broker.sh   # another binary; both
#       consumers' prefetch (the server's --amqp-prefetch and the baseline's)
#
# Needs RabbitMQ on 127.0.0.1:5672 (scripts/services.sh). The bench uses a
# namespace of its own (--amqp-namespace) and deletes its queues after.
# A dated line is appended to bench-out/broker.log.
set -euo pipefail
BENCH_NAME=broker
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh

MODE="${MODE:-embedded}"
EVENTS="${EVENTS:-5000}"
CLAIMS="${CLAIMS:-5000}"
RATE="${RATE:-0}"
PREFETCH="${PREFETCH:-512}"   # the server's default
AMQP="${AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}"
NS="bench-$(date +%s)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/bench-out"
mkdir -p "$OUT"

say "building (release)"
cargo build --release -p flashcoupon --bin flashcoupon --example broker_bench
SERVER_BIN="${SERVER_BIN:-$TARGET/release/flashcoupon}"
ADMIN_EMAIL="bench-admin@bench.invalid"
ADMIN_PASSWORD="bench-admin-password"
MODE_ENV=()
if [[ $MODE == scale-out ]]; then
    psql -h 127.0.0.1 -U postgres -qAt -d postgres -c "DROP DATABASE IF EXISTS flashcoupon_bench WITH (FORCE)" \
        -c "CREATE DATABASE flashcoupon_bench"
    MODE_ENV=(FLASHCOUPON_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/flashcoupon_bench"
        FLASHCOUPON_REDIS_URL="redis://127.0.0.1:6379" FLASHCOUPON_REDIS_PREFIX="bench$(date +%s)"
        FLASHCOUPON_JWT_SECRET="bench-secret-bench-secret-bench-secret")
fi
start flashcoupon "flashcoupon listening on http://" env "${MODE_ENV[@]}" \
    FLASHCOUPON_ADMIN_EMAIL="$ADMIN_EMAIL" FLASHCOUPON_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    FLASHCOUPON_CLAIM_RATE_PER_USER=0 FLASHCOUPON_WRITE_RATE_PER_USER=0 RUST_LOG=warn \
    FLASHCOUPON_AMQP_URL="$AMQP" FLASHCOUPON_AMQP_NAMESPACE="$NS" FLASHCOUPON_AMQP_PREFETCH="$PREFETCH" \
    "$SERVER_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data"
say "measuring ($MODE, $EVENTS events, $CLAIMS claims)"
LINE="$("$TARGET/release/examples/broker_bench" --base "http://$ADDR" --admin-email "$ADMIN_EMAIL" \
    --admin-password "$ADMIN_PASSWORD" --amqp "$AMQP" --namespace "$NS" \
    --events "$EVENTS" --claims "$CLAIMS" --rate "$RATE" --prefetch "$PREFETCH")"
echo "$LINE"
printf '%s mode=%s rev=%s %s\n' "$(date -u +%FT%TZ)" "$MODE" "$(git rev-parse --short HEAD)" "$LINE" >>"$OUT/broker.log"
# The namespace's own queues and exchange go with the run.
for q in "$NS.payments" "$NS.payments.dead"; do rabbitmqctl delete_queue "$q" >/dev/null 2>&1 || true; done
rabbitmqctl eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$NS.events\">>), false, <<\"bench\">>)." >/dev/null 2>&1 || true
