#!/usr/bin/env bash
# schemathesis against the real server: `flashcoupon serve` (embedded mode,
# a fresh data dir, a free port) is fuzzed from its own /openapi.json with
# every check, positive and negative data, and every phase (examples,
# coverage, fuzzing, and stateful sequences over the links schemathesis
# infers). Two runs: as the admin, then as a shopper; both know a second
# shopper, whom the object-level authorization check replays the first
# shopper's reads as (they must be 404). Any failure exits non-zero.
#
# Bounded: ST_MAX_EXAMPLES cases per operation (default 50; both runs take
# about a minute on two cores), and each run is killed after ST_TIME_LIMIT
# seconds (default 300) should it ever hang. The seed is random and printed:
# ST_SEED=<seed> repeats a run. Installs a pinned schemathesis into
# .venv-schemathesis on first use. Called by scripts/test.sh.
#
#   bash scripts/schemathesis.sh
#   ST_MAX_EXAMPLES=300 bash scripts/schemathesis.sh   # a deeper run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ST_VERSION=4.32.5
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-50}
TIME_LIMIT=${ST_TIME_LIMIT:-300}
SEED=${ST_SEED:-}

VENV="$ROOT/.venv-schemathesis"
if ! "$VENV/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
    echo "==> installing schemathesis $ST_VERSION into .venv-schemathesis (one-off)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

# ST_BIN=<path> runs a binary built elsewhere (e.g. a copy, while the tree
# is being rebuilt); by default the debug build of this checkout.
if [[ -n ${ST_BIN:-} ]]; then
    BIN=$ST_BIN
else
    cargo build --bin flashcoupon
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/flashcoupon"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashcoupon-schemathesis.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Rate limits off: with them most of a generated burst is 429 (documented,
# so no failure, but it hides every other answer from the checks).
export FLASHCOUPON_ADMIN_EMAIL=schemathesis-admin@example.com
export FLASHCOUPON_ADMIN_PASSWORD=schemathesis-admin-password
RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" \
    --claim-rate-per-user 0 --write-rate-per-user 0 --auth-rate-per-ip 0 \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^flashcoupon listening on //p' "$WORK/server.out")"
[[ -n $URL ]] || { echo "the server did not start:"; cat "$WORK/server.err"; exit 1; }

# What exists before the run, so ids in paths can name real things: two
# shoppers, an open campaign, a coupon each, a webhook. Then the identities,
# as a Web Fuzzing Commons auth file.
python3 - "$URL" "$WORK" <<'PY'
import datetime, json, sys, urllib.request

url, work = sys.argv[1], sys.argv[2]

def call(method, path, body=None, token=None):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as r:
        return json.load(r)

admin = call("POST", "/api/v1/auth/login", {
    "email": "schemathesis-admin@example.com", "password": "schemathesis-admin-password"})["token"]
shoppers = [call("POST", "/api/v1/auth/signup", {
    "email": f"shopper{n}@example.com", "password": "shopper-password"})["token"] for n in (1, 2)]
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
campaign = call("POST", "/api/v1/campaigns", {
    "name": "schemathesis drop",
    "discount": {"type": "percent", "percent": 10, "max_amount": 5000},
    "total_quantity": 1000000, "per_user_limit": 1000,
    "issue_starts_at": (now - datetime.timedelta(minutes=1)).isoformat(),
    "issue_ends_at": (now + datetime.timedelta(days=1)).isoformat(),
    "valid_days": 30}, admin)
for token in shoppers:
    call("POST", f"/api/v1/campaigns/{campaign['id']}/issue", token=token)
call("POST", "/api/v1/admin/webhooks", {"url": "https://shop.invalid/hook", "events": ["coupon.used"]}, admin)

def who(name, token):
    return {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
with open(f"{work}/auth.json", "w") as f:
    json.dump({"auth": [who("admin", admin), who("shopper", shoppers[0]), who("shopper2", shoppers[1])]}, f)
PY

status=0
summary=()
failed=()
run() {
    local who=$1
    echo "==> schemathesis as $who: all checks, positive and negative data, every phase," \
        "$MAX_EXAMPLES examples per operation"
    cat >"$WORK/schemathesis.toml" <<TOML
hooks = "$ROOT/scripts/schemathesis_hooks.py"
# A live stock stream sends its first event at once, then only on change:
# read that one and hang up, rather than wait out the request timeout.
max-stream-events = 1

[auth.wfc]
path = "$WORK/auth.json"
user = "$who"
# Identities that must never read each other's objects.
peers = ["shopper", "shopper2"]

# The default rejections, plus 413: a body over 64 KiB is refused before it
# is read (listed on every operation with a body), e.g. 2,000 ids to mark read.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# Every built-in check is on by default. Not \`--checks all\` on the command
# line: in 4.32.5 that marks each check explicitly enabled, which outranks
# the per-operation exception below (it never applied, and a stateful
# DELETE-then-GET of a subscription failed CI once in a while).
#
# The one exception. A subscription is a switch, not a resource: after its
# DELETE, GET answers 200 {"subscribed": false}, as the shop page reads it
# (tests/api/notifications/inbox.rs), where use_after_free expects a 404.
[[operations]]
include-name = "GET /api/v1/campaigns/{id}/subscription"
checks.use_after_free.enabled = false

# A code job's count is checked against what the campaign has stored: codes
# past its total_quantity are 400 invalid_input (API.md "Codes"), which no
# schema can say of a count alone. The stateful phase finds it whenever it
# makes a small codes campaign and then asks for more codes than coupons.
[[operations]]
include-name = "POST /api/v1/campaigns/{id}/codes"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# Likewise an order's points are checked against the sale's stored price
# (after the coupon): more points than that is 400 invalid_input naming
# \`points\`, which no schema can say of the number alone.
[[operations]]
include-name = "POST /api/v1/sales/{id}/orders"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# A summary's window is checked as a whole: \`to\` before \`from\` (or before
# the default start), or wider than 31 days, is 400 invalid_input (API.md
# "Statistics"), which no schema can say of each time alone.
[[operations]]
include-name = "GET /api/v1/admin/campaigns/{id}/summary"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-name = "GET /api/v1/admin/sales/{id}/summary"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
TOML
    local args=(--config-file "$WORK/schemathesis.toml" run "$URL/openapi.json"
        --mode all --phases examples,coverage,fuzzing,stateful
        --max-examples "$MAX_EXAMPLES" --request-timeout 10
        --generation-database none --no-color)
    if [[ -n $SEED ]]; then args+=(--seed "$SEED"); fi
    local rc=0
    timeout "$TIME_LIMIT" "$VENV/bin/st" "${args[@]}" | tee "$WORK/$who.log" || rc=$?
    [[ $rc -eq 0 ]] || status=1
    # "1479 generated, 1479 passed, 38 skipped" and "== 2 warnings in 41.18s =="
    local cases ending
    cases=$(grep -A1 "^Test cases:" "$WORK/$who.log" | tail -1 | sed 's/^ *//')
    ending=$(grep -E "^=+ .* in [0-9.]+s =+$" "$WORK/$who.log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
    [[ $rc -eq 124 ]] && ending="killed after ${TIME_LIMIT}s"
    summary+=("as $who: ${cases:-no cases} (${ending:-exit $rc})")
    # CI shows the end of the output: repeat what failed there, with the
    # seed that repeats it.
    if [[ $rc -ne 0 ]]; then
        failed+=("--- as $who, $(grep -E '^Seed: ' "$WORK/$who.log" | tail -1):")
        failed+=("$(sed -n '/^=* FAILURES =*$/,/^=* SUMMARY =*$/p' "$WORK/$who.log" | head -n 60)")
    fi
}
run admin
run shopper

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server died during the run:"
    tail -n 50 "$WORK/server.err"
    status=1
fi
if grep -q "a handler panicked" "$WORK/server.err"; then
    echo "the server logged a panic:"
    grep "a handler panicked" "$WORK/server.err" | head
    status=1
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "==> schemathesis failures (the first 60 lines of each run's):"
    printf '%s\n' "${failed[@]}"
fi
echo "==> schemathesis: ${summary[0]}; ${summary[1]}"
exit $status
