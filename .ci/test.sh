#!/usr/bin/env bash
# The whole test suite, as README.md gives it: the Rust workspace, then the Python package.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
bash python/test.sh
