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
