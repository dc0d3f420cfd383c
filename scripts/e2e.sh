#!/usr/bin/env bash
# The web UI's end-to-end tests: headless Chromium (Debian's, driven by
# playwright-core, which cannot download a browser here) against a real
# `flashcoupon serve` on a free port. Installs what it needs on a fresh
# machine; screenshots land in e2e/artifacts/. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Chromium, and a Korean font so Korean labels render (and screenshot) as text.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi nanum || missing+=(fonts-nanum)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} from Debian (one-off)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -d e2e/node_modules/playwright-core ]; then
    echo "==> npm ci in e2e/ (playwright-core only)"
    (cd e2e && npm ci --no-audit --no-fund)
fi

# The tests start this binary, with the pages embedded in it.
cargo build --bin flashcoupon
rm -rf e2e/artifacts
cd e2e
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout shop.test.mjs admin.test.mjs sales.test.mjs stats.test.mjs
