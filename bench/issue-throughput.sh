#!/usr/bin/env bash
# Issue-endpoint throughput against a bare axum baseline, measured in the same
# run on the same machine, so the figure that matters is the ratio.
#
#   bash bench/issue-throughput.sh
#
# 1. bare baseline (crates/flashcoupon/examples/bare_baseline.rs): POST /issue
#    with body {} (JSON extractor runs), 201 + a coupon-shaped JSON object.
# 2. flashcoupon serve on a fresh data dir, per-user rate limiter off, USERS
#    users from the bulk endpoint, one campaign; POST /api/v1/campaigns/{id}/issue
#    with every request from the next user ("distinct users, durable, JWT on").
# Both get the same wrk settings and the same Lua script (bench/issue.lua), a
# warm-up of WARMUP seconds, then the measured run.
# 3. (embedded) the record's own ceiling (examples/record_ceiling.rs): the
#    server's SQLite writer fed from one thread, no HTTP, as many coupons as
#    the server issued, in batches of the server's mean size.
#
# MODE=scale-out runs flashcoupon against the local Redis (gate) and a fresh
# PostgreSQL database flashcoupon_bench (record), one instance, and also
# reports the Redis round trips per claim from the server's own counter.
#
# Knobs (env): MODE=embedded|scale-out DURATION=10s CONNECTIONS=64 THREADS=2 USERS=20000 WARMUP=2s
#   USER_ORDER=shuffled|signup (order of the tokens; see below)
#   BENCH_TMPDIR (parent of the temp data dir; default $TMPDIR or /tmp)
#   SERVER_BIN, BASELINE_BIN, LABEL (prebuilt binaries; see below)
#   FLASHCOUPON_COMMIT_MAX_BATCH etc. pass through to the server.
# A dated one-line summary is appended to bench-out/issue-throughput.log.
set -euo pipefail

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
USERS="${USERS:-20000}"
WARMUP="${WARMUP:-2s}"
USER_ORDER="${USER_ORDER:-shuffled}"
MODE="${MODE:-embedded}"
case "$MODE" in
embedded) TARGET_PCT=60 ;;
scale-out) TARGET_PCT=35 ;;
*) echo "MODE must be embedded or scale-out" >&2; exit 1 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LUA="$ROOT/bench/issue.lua"
OUT="$ROOT/bench-out"
LOG="$OUT/issue-throughput.log"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$OUT"
BENCH_NAME=issue-throughput
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- tools -------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- build -------------------------------------------------------------------
# SERVER_BIN (and BASELINE_BIN) run prebuilt binaries instead, e.g. two
# builds of different commits measured interleaved in one session; LABEL then
# names the server in the log line.
if [[ -z "${SERVER_BIN:-}" ]]; then
    say "building (release)"
    cargo build --release -p flashcoupon --bin flashcoupon --example bare_baseline --example record_ceiling
    SERVER_BIN="$TARGET/release/flashcoupon"
fi
BASELINE_BIN="${BASELINE_BIN:-$TARGET/release/examples/bare_baseline}"
CEILING_BIN="${CEILING_BIN:-$TARGET/release/examples/record_ceiling}"
[[ -x "$SERVER_BIN" && -x "$BASELINE_BIN" ]] || die "missing binaries: $SERVER_BIN $BASELINE_BIN"

# bench NAME URL [BODY]: warm-up, then the measured run; sets the R_* figures.
bench() {
    local name="$1" url="$2" body="${3-}"
    local args=("$TOKENS" "$THREADS")
    [[ -n "$body" ]] && args+=("$body")
    say "$name: warm-up $WARMUP"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$LUA" "$url" -- "${args[@]}" >/dev/null
    "${BEFORE_MEASURE:-true}"
    say "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$LUA" "$url" -- "${args[@]}" \
        | tee "$WORK/$name.wrk" >&2
    local line
    line="$(grep '^@@ ' "$WORK/$name.wrk")" || die "no summary line from wrk"
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    R_REQUESTS="$(field requests)"
    R_SECS="$(field secs)"
    R_RPS="$(field rps)"
    R_P50="$(field p50_ms)"
    R_P99="$(field p99_ms)"
    R_NON201="$(field non201)"
    R_STATUSES="$(field statuses)"
    R_SOCK="connect=$(field sock_connect) read=$(field sock_read) write=$(field sock_write) timeout=$(field sock_timeout)"
    R_SOCKERR=$(($(field sock_connect) + $(field sock_read) + $(field sock_write) + $(field sock_timeout)))
}

# --- users -------------------------------------------------------------------
# The flashcoupon side needs real tokens; the baseline gets the same requests
# (it ignores the Authorization header) so wrk does identical work for both.
TOKENS="$WORK/tokens.txt"
DATA="$WORK/data"
ADMIN_EMAIL="bench-admin@bench.invalid"
ADMIN_PASSWORD="bench-admin-password"
FSTYPE="$(stat -f -c %T "$WORK")"
MODE_ENV=()
if [[ "$MODE" == scale-out ]]; then
    bash "$ROOT/scripts/services.sh" >&2
    psql -h 127.0.0.1 -U postgres -qAt -d postgres -c "DROP DATABASE IF EXISTS flashcoupon_bench WITH (FORCE)" -c "CREATE DATABASE flashcoupon_bench"
    FSTYPE="postgresql:$(psql -h 127.0.0.1 -U postgres -qAt -d postgres -c 'SHOW synchronous_commit')"
    MODE_ENV=(FLASHCOUPON_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/flashcoupon_bench"
        FLASHCOUPON_REDIS_URL="redis://127.0.0.1:6379" FLASHCOUPON_REDIS_PREFIX="bench$(date +%s)"
        FLASHCOUPON_JWT_SECRET="bench-secret-bench-secret-bench-secret")
    say "flashcoupon: starting in scale-out mode (Redis 127.0.0.1:6379, PostgreSQL database flashcoupon_bench)"
else
    say "flashcoupon: starting on a fresh data dir ($FSTYPE at $WORK)"
    [[ "$FSTYPE" != tmpfs ]] || say "WARNING: tmpfs makes fsync free; this does not measure durable issuing"
fi
FLASHCOUPON_ADMIN_EMAIL="$ADMIN_EMAIL" FLASHCOUPON_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    FLASHCOUPON_CLAIM_RATE_PER_USER=0 RUST_LOG="${RUST_LOG:-warn}" \
    start flashcoupon "flashcoupon listening on http://" \
    env "${MODE_ENV[@]}" "$SERVER_BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA"
FC="http://$ADDR"
FC_PID="${PIDS[-1]}"

ADMIN_TOKEN="$(api POST /api/v1/auth/login \
    "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | json_str token)"
[[ -n "$ADMIN_TOKEN" ]] || die "admin log-in failed"

provision_users "$USERS" "$TOKENS"
# User ids are UUIDv7, so sign-up order is id order: replaying tokens in that
# order makes each commit batch hit a few adjacent pages of the user-keyed
# indexes, which real arrivals do not. Shuffle unless USER_ORDER=signup.
case "$USER_ORDER" in
shuffled) shuf -o "$TOKENS" "$TOKENS" ;;
signup) ;;
*) die "USER_ORDER must be shuffled or signup" ;;
esac

now_offset() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
CAMPAIGN="$(api POST /api/v1/campaigns "{\"name\":\"bench\",\"discount\":{\"type\":\"fixed\",\"amount\":1000},\
\"total_quantity\":1000000000,\"per_user_limit\":1000,\"issue_starts_at\":\"$(now_offset '-1 hour')\",\
\"issue_ends_at\":\"$(now_offset '+1 day')\",\"valid_days\":30}" | json_str id)"
[[ -n "$CAMPAIGN" ]] || die "campaign creation failed"

# --- baseline ----------------------------------------------------------------
# Run the baseline while the (idle) flashcoupon process exists, so both
# measured runs see the same set of processes; it is idle and costs nothing.
say "baseline: starting"
start baseline "bare baseline listening on http://" "$BASELINE_BIN" 127.0.0.1:0
bench baseline "http://$ADDR/issue" '{}'
B_RPS="$R_RPS" B_P50="$R_P50" B_P99="$R_P99" B_NON201="$R_NON201" B_SOCK="$R_SOCK" B_SOCKERR="$R_SOCKERR"
stop_last

# --- flashcoupon -------------------------------------------------------------
metric() { # NAME [LABELS] from a /metrics dump on stdin
    awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}
# Bytes the server caused to be written to storage (WAL and checkpoints).
write_bytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$FC_PID/io"; }
# The write-ahead log's largest file size during the measured run (embedded:
# SQLite starts the log over only after a checkpoint copied all of it).
wal_sampler() { # ends with the server, whatever becomes of this script
    local max=0 size
    while kill -0 "$FC_PID" 2>/dev/null; do
        size="$(stat -c %s "$DATA/flashcoupon.db-wal" 2>/dev/null || echo 0)"
        ((size > max)) && max="$size" && echo "$max" >"$WORK/wal.max"
        sleep 0.25
    done
}
snapshot() {
    sleep 0.5
    api GET /metrics >"$WORK/metrics.before"
    WB_BEFORE="$(write_bytes)"
    if [[ "$MODE" == embedded ]]; then
        wal_sampler &
        WAL_SAMPLER=$!
    fi
}
ISSUE_URL="$FC/api/v1/campaigns/$CAMPAIGN/issue"
BEFORE_MEASURE=snapshot bench flashcoupon "$ISSUE_URL"
F_RPS="$R_RPS" F_P50="$R_P50" F_P99="$R_P99" F_NON201="$R_NON201" F_STATUSES="$R_STATUSES" F_SOCK="$R_SOCK" F_SOCKERR="$R_SOCKERR"
F_REQUESTS="$R_REQUESTS" F_SECS="$R_SECS"
[[ -z "${WAL_SAMPLER:-}" ]] || kill "$WAL_SAMPLER"
WAL_MAX_MIB="$(awk '{ printf "%.0f", $1 / 1048576 }' "$WORK/wal.max" 2>/dev/null || echo n/a)"
sleep 0.5 # let claims still in flight when wrk stopped be committed
api GET /metrics >"$WORK/metrics.after"
WB_AFTER="$(write_bytes)"
ISSUED="$(api GET "/api/v1/campaigns/$CAMPAIGN" | json_num issued_count)"

delta() { # METRIC -> after - before
    local a b
    a="$(metric "$1" <"$WORK/metrics.after")"
    b="$(metric "$1" <"$WORK/metrics.before")"
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", a - b }'
}
BATCH_SUM="$(delta flashcoupon_group_commit_batch_size_sum)"
BATCH_COUNT="$(delta flashcoupon_group_commit_batch_size_count)"
COMMIT_SECS="$(metric flashcoupon_group_commit_seconds_sum <"$WORK/metrics.after")"
COMMIT_SECS0="$(metric flashcoupon_group_commit_seconds_sum <"$WORK/metrics.before")"
WRITER_BUSY="$(awk -v a="$COMMIT_SECS" -v b="$COMMIT_SECS0" -v w="$F_SECS" 'BEGIN { printf "%.0f", w ? 100 * (a - b) / w : 0 }')"
COMMIT_MS="$(awk -v a="$COMMIT_SECS" -v b="$COMMIT_SECS0" -v c="$BATCH_COUNT" 'BEGIN { printf "%.2f", c ? 1000 * (a - b) / c : 0 }')"
BATCH_MEAN="$(awk -v s="$BATCH_SUM" -v c="$BATCH_COUNT" 'BEGIN { printf "%.1f", c ? s / c : 0 }')"
ISSUED_RUN="$(delta 'flashcoupon_issue_outcomes_total{result="issued"}')"
OUTCOMES="$(grep '^flashcoupon_issue_outcomes_total' "$WORK/metrics.after" | sed 's/flashcoupon_issue_outcomes_total//' | tr '\n' ' ')"
ROUND_TRIPS="$(delta flashcoupon_gate_redis_round_trips_total)"
RT_PER_CLAIM="$(awk -v r="$ROUND_TRIPS" -v c="$ISSUED_RUN" 'BEGIN { printf "%.3f", c ? r / c : 0 }')"
RATIO="$(awk -v f="$F_RPS" -v b="$B_RPS" 'BEGIN { printf "%.1f", b ? 100 * f / b : 0 }')"
KIB_PER_COUPON="$(awk -v a="$WB_AFTER" -v b="$WB_BEFORE" -v c="$ISSUED_RUN" 'BEGIN { printf "%.1f", c ? (a - b) / c / 1024 : 0 }')"

# --- the record's ceiling (embedded) -------------------------------------------
C_RPS=0 C_RATIO=n/a
if [[ "$MODE" == embedded ]]; then
    stop_last # the server: the ceiling has the machine to itself
    say "record ceiling: $CEILING_BIN"
    "$CEILING_BIN" --coupons "$((ISSUED_RUN > 20000 ? ISSUED_RUN : 20000))" \
        --batch "$(printf '%.0f' "$BATCH_MEAN")" --users "$USERS" \
        --sync "${FLASHCOUPON_SQLITE_SYNCHRONOUS:-full}" --tmpdir "$WORK" | tee "$WORK/ceiling.out" >&2
    C_RPS="$(sed -n 's/^ceiling_coupons_per_sec=//p' "$WORK/ceiling.out")"
    C_RATIO="$(awk -v f="$F_RPS" -v c="$C_RPS" 'BEGIN { printf "%.1f%%", c ? 100 * f / c : 0 }')"
fi

# --- report ------------------------------------------------------------------
cat >&2 <<REPORT

================ issue throughput, $MODE (wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $USERS users, $USER_ORDER) ================
baseline     $(printf '%10.0f' "$B_RPS") req/s   p50 ${B_P50} ms   p99 ${B_P99} ms   non-201 $B_NON201   sockets: $B_SOCK
flashcoupon  $(printf '%10.0f' "$F_RPS") req/s   p50 ${F_P50} ms   p99 ${F_P99} ms   non-201 $F_NON201   sockets: $F_SOCK
ratio        flashcoupon / baseline = ${RATIO}%   (target >= ${TARGET_PCT}%)
ceiling      the record alone, one thread: $(printf '%.0f' "$C_RPS") coupons/s; flashcoupon / ceiling = $C_RATIO   (target >= 80%)
disk         the server wrote $KIB_PER_COUPON KiB per issued coupon during the measured run (target <= 2 KiB embedded);
             the write-ahead log's file reached ${WAL_MAX_MIB:-n/a} MiB
redis        round trips per issued claim = $RT_PER_CLAIM ($ROUND_TRIPS calls; 0 in embedded mode)
campaign     issued_count=$ISSUED (warm-up included); answered 201 by the server during the measured run=$ISSUED_RUN (wrk counted $F_REQUESTS)
group commit mean batch size during the measured run = $BATCH_MEAN ($BATCH_SUM coupons / $BATCH_COUNT commits);
             mean commit ${COMMIT_MS} ms; the writer was committing ${WRITER_BUSY}% of the run
outcomes     $OUTCOMES
REPORT
status=0
if [[ "$F_NON201" != 0 || "$B_NON201" != 0 || "$F_SOCKERR" != 0 || "$B_SOCKERR" != 0 ]]; then
    cat >&2 <<LOUD

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!! NON-201 RESPONSES: flashcoupon $F_NON201 (${F_STATUSES}), baseline $B_NON201
!!! socket errors: flashcoupon $F_SOCKERR, baseline $B_SOCKERR
!!! The throughput figures above are NOT a clean measurement of issuing.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
LOUD
    status=2
fi

rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git status --porcelain -- crates 2>/dev/null | head -c1)"
if [[ -n "${LABEL:-}" ]]; then rev="$LABEL" dirty=""; fi
printf '%s mode=%s rev=%s%s t=%s c=%s d=%s users=%s order=%s baseline_rps=%.0f flashcoupon_rps=%.0f ratio=%s%% p50_ms=%s/%s p99_ms=%s/%s batch_mean=%s commit_ms=%s writer_busy=%s%% non201=%s max_batch=%s fs=%s redis_rt_per_claim=%s ceiling_rps=%.0f ceiling_ratio=%s kib_per_coupon=%s wal_max_mib=%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$MODE" "$rev" "${dirty:+-dirty}" "$THREADS" "$CONNECTIONS" "$DURATION" "$USERS" "$USER_ORDER" \
    "$B_RPS" "$F_RPS" "$RATIO" "$B_P50" "$F_P50" "$B_P99" "$F_P99" "$BATCH_MEAN" "$COMMIT_MS" "$WRITER_BUSY" \
    "$F_NON201" "${FLASHCOUPON_COMMIT_MAX_BATCH:-default}" "$FSTYPE" "$RT_PER_CLAIM" "$C_RPS" "$C_RATIO" "$KIB_PER_COUPON" "${WAL_MAX_MIB:-n/a}" >>"$LOG"
echo "appended to ${LOG#"$ROOT/"}:" >&2
tail -n1 "$LOG" >&2
exit "$status"
