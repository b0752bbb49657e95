#!/usr/bin/env bash
# Runs every cargo-fuzz target for a short, bounded time (FUZZ_SECONDS, default 20).
# Inputs kept in fuzz/regressions/<target>/ seed the run (and are replayed by
# `cargo test -p ds-model`). A crash fails the run; copy the input cargo-fuzz names into
# fuzz/regressions/<target>/ once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked

for target in key_parse key_codec entity_json query_filter; do
  corpus="target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  cp fuzz/regressions/"$target"/* "$corpus"/
  echo "-- fuzzing $target for ${seconds}s"
  (cd fuzz && cargo +nightly fuzz run "$target" "../$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3)
done
