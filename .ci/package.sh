#!/usr/bin/env bash
# `cargo package` of every crate a user depends on, with verification: each is built from
# its .crate alone (its dependencies on the others from the packages just made), so a
# crate that reaches outside its own directory fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
PUBLISHED=(ds-model ds-guest-rt ds-guest-sdk ds-store host-core ds-host ads-host ds-cli)
args=()
for crate in "${PUBLISHED[@]}"; do args+=(-p "$crate"); done
# cargo unpacks each package it verifies under the registry's source folder, named by the
# package's name and version and by a hash of the temporary registry's path, and reuses an
# unpacked copy it finds there: a second run from the same checkout path would verify
# against the first run's sources. Remove ours (never crates.io's) first.
registry_src="${CARGO_HOME:-$HOME/.cargo}/registry/src"
for crate in "${PUBLISHED[@]}"; do
  [ -d "$registry_src" ] || break
  find "$registry_src" -mindepth 2 -maxdepth 2 -type d -name "$crate-[0-9]*" \
    ! -path "$registry_src/index.crates.io-*" -exec rm -rf {} +
done
# A clean clone has nothing to allow; a working tree with edits is packaged as it is.
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then args+=(--allow-dirty); fi
cargo package "${args[@]}" 2>&1 | grep -v "^\s*Compiling\|^\s*Downloaded\|^\s*Checking" | tee target/package.log
ls -l target/package/*.crate
