#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs.
# Installs what it needs on a fresh machine; every test talks to real storage.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> cargo-nextest is missing; installing it (one-off)"
    cargo install --locked cargo-nextest
fi

echo "==> unit, contract, concurrency and crash tests (embedded mode: SQLite on disk)"
cargo nextest run --workspace --no-fail-fast "$@"
