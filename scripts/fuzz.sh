#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time (FUZZ_SECONDS each, default 20) from its
# seed corpus in fuzz/corpus/<target>; new inputs go to a scratch directory, so the checkout
# stays clean. A crash fails the run and leaves the input in fuzz/artifacts/<target>/: fix
# the bug and add the input to fuzz/corpus/<target>/ as a regression seed.
# Needs nightly Rust and cargo-fuzz; installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# Its own target directory: the sanitizer flags make every artifact different anyway.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR%/}-fuzz"
else
  export CARGO_TARGET_DIR="$PWD/target/fuzz"
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd fuzz
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 2>&1 | tail -n 40
done
