#!/usr/bin/env bash
# Runs every test: unit, storage conformance, proptest models, in-process clusters, the
# multi-process end-to-end tests with the real etcdctl, and the fuzz targets (bounded).
# Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
# etcd for comparisons, and what the agent's and the fault-injection harness's tests run on:
# containerd with CNI plugins, busybox for the test image, iproute2/nftables/faketime, conntrack.
# (containerd only when no containerd binary exists: Docker's containerd.io conflicts with it.)
extra=()
command -v containerd >/dev/null 2>&1 || extra+=(containerd)
scripts/install-deps.sh etcd-client etcd-server containernetworking-plugins busybox-static conntrack \
  iproute2 nftables faketime chromium docker-compose "${extra[@]}"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# The end-to-end tests run the real binary, so build it first.
cargo build --bin flotilla
cargo nextest run --workspace --no-fail-fast "$@"
# Then every fuzz target for a bounded time (nightly Rust and cargo-fuzz, installed if missing).
scripts/fuzz.sh
