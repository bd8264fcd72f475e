#!/usr/bin/env bash
# Runs every test: unit, storage conformance, proptest models, in-process clusters, and the
# multi-process end-to-end tests with the real etcdctl. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh etcd-client etcd-server
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# The end-to-end tests run the real binary, so build it first.
cargo build --bin flotilla
cargo nextest run --workspace --no-fail-fast "$@"
