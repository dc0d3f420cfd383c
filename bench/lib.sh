# Shared by the bench scripts (sourced): messages, background servers on a
# temp work dir cleaned up on exit, the admin API through curl, and users
# from the bulk endpoint. Set BENCH_NAME before sourcing.

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/flashcoupon-bench.XXXXXX")"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME PATTERN CMD...: run CMD in the background, wait for its
# "... listening on http://ADDR" line, set ADDR.
start() {
    local name="$1" pattern="$2"
    shift 2
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=("$!")
    local pid="$!" line=""
    for _ in $(seq 1 300); do
        line="$(grep -m1 "$pattern" "$WORK/$name.out" 2>/dev/null || true)"
        [[ -n "$line" ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.err" >&2; die "$name exited at start-up"; }
        sleep 0.1
    done
    [[ -n "$line" ]] || die "$name did not report its address"
    ADDR="${line##*http://}"
}

stop_last() {
    local pid="${PIDS[-1]}"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
}

api() { # METHOD PATH [JSON] -> body on stdout; fails on non-2xx (uses FC, ADMIN_TOKEN)
    local method="$1" path="$2" data="${3-}"
    local opts=(-sS --fail-with-body -X "$method" "$FC$path" -H "Authorization: Bearer ${ADMIN_TOKEN-}")
    [[ -n "$data" ]] && opts+=(-H 'Content-Type: application/json' --data "$data")
    curl "${opts[@]}"
}
json_str() { grep -o "\"$1\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4; }
json_num() { grep -o "\"$1\":[0-9]*" | head -n1 | cut -d: -f2; }

# provision_users COUNT FILE: COUNT users from the bulk endpoint, one bearer
# token per line in FILE.
provision_users() {
    local count="$1" file="$2" left="$1" batch=0 n got
    say "flashcoupon: provisioning $count users"
    : >"$file"
    while ((left > 0)); do
        n=$((left < 10000 ? left : 10000))
        api POST /api/v1/admin/users/bulk \
            "{\"count\":$n,\"email_prefix\":\"bench-$batch\",\"password\":\"password-123\"}" \
            | grep -o '"token":"[^"]*"' | cut -d'"' -f4 >>"$file"
        left=$((left - n))
        batch=$((batch + 1))
    done
    got="$(wc -l <"$file")"
    ((got == count)) || die "expected $count tokens, got $got"
}

# start_embedded [VAR=VALUE...]: build the release binary (unless SERVER_BIN
# is set), start `flashcoupon serve` in embedded mode on a fresh data dir
# with a bench admin and the given environment, and log the admin in. Sets
# SERVER_BIN, DATA, FC, SERVER_PID and ADMIN_TOKEN.
start_embedded() {
    if [[ -z "${SERVER_BIN:-}" ]]; then
        say "building (release)"
        cargo build --release -p flashcoupon --bin flashcoupon
        SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flashcoupon"
    fi
    DATA="$WORK/data"
    local email="bench-admin@bench.invalid" password="bench-admin-password"
    say "flashcoupon: starting on a fresh data dir ($(stat -f -c %T "$WORK") at $WORK)"
    start flashcoupon "flashcoupon listening on http://" \
        env FLASHCOUPON_ADMIN_EMAIL="$email" FLASHCOUPON_ADMIN_PASSWORD="$password" \
        RUST_LOG="${RUST_LOG:-warn}" "$@" \
        "$SERVER_BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA"
    FC="http://$ADDR"
    SERVER_PID="${PIDS[-1]}"
    ADMIN_TOKEN="$(api POST /api/v1/auth/login \
        "{\"email\":\"$email\",\"password\":\"$password\"}" | json_str token)"
    [[ -n "$ADMIN_TOKEN" ]] || die "admin log-in failed"
}
