#!/usr/bin/env bash
# The fuzz targets (fuzz/, cargo fuzz + libFuzzer) for FUZZ_SECONDS each
# (default 20: the smoke run of scripts/test.sh; run longer by hand, e.g.
# FUZZ_SECONDS=3600 bash scripts/fuzz.sh). A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run; replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -O <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo-fuzz is missing; installing it (one-off)"
    cargo install --locked cargo-fuzz
fi
# libFuzzer's coverage instrumentation uses unstable compiler flags; the
# machine has one (stable) toolchain, which allows them under
# RUSTC_BOOTSTRAP. No sanitizer: the project forbids `unsafe`, so the
# oracles are panics and the targets' own assertions.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -O
status=0
for target in parsers campaign_json discount; do
    mkdir -p "$PWD/fuzz/corpus/$target"
    dict=()
    [ "$target" = campaign_json ] && dict=(-dict="$PWD/fuzz/campaign.dict")
    echo "==> fuzz $target for ${seconds}s"
    log="$(mktemp)"
    if cargo fuzz run -s none -O "$target" "$PWD/fuzz/corpus/$target" "$PWD/fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
        tail -n 8 "$log"
    else
        grep -A6 -m1 "panicked" "$log" || tail -n 40 "$log"
        echo "==> fuzz $target FAILED: see fuzz/artifacts/$target/"
        status=1
    fi
    rm -f "$log"
done
exit $status
