#!/usr/bin/env bash
# Builds flotilla and runs a local three-replica cluster with two node agents in
# ./.flotilla-cluster (Ctrl-C stops it; running it again resumes the same cluster).
# The agents use Docker when a Docker daemon answers (the local test image is built first),
# else they run containers as host processes. RUNTIME=docker|containerd|process|fake chooses.
# Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
runtime="${RUNTIME:-auto}"
if [ "$runtime" = auto ] && docker info >/dev/null 2>&1; then
  runtime=docker
fi
case "$runtime" in
  # The docker and containerd agents program Services with nftables.
  docker | containerd) scripts/install-deps.sh etcd-client nftables conntrack ;;
  *) scripts/install-deps.sh etcd-client ;;
esac
case "$runtime" in
  docker) scripts/make-test-image ;;
  containerd) scripts/make-test-image --containerd ;;
esac
cargo build --release --bin flotilla
exec "${CARGO_TARGET_DIR:-target}/release/flotilla" up --dir .flotilla-cluster --replicas "${REPLICAS:-3}" \
  --agents "${AGENTS:-2}" --agent-runtime "$runtime"
