#!/usr/bin/env bash
# Builds flotilla and runs a local three-replica cluster with two node agents (fake runtime)
# in ./.flotilla-cluster (Ctrl-C stops it; running it again resumes the same cluster).
# Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh etcd-client
cargo build --release --bin flotilla
exec "${CARGO_TARGET_DIR:-target}/release/flotilla" up --dir .flotilla-cluster --replicas "${REPLICAS:-3}" --agents "${AGENTS:-2}"
