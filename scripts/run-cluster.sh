#!/usr/bin/env bash
# Builds flotilla and runs a local three-replica cluster with two node agents in
# ./.flotilla-cluster (Ctrl-C stops it; running it again resumes the same cluster).
# The agents use Docker when a Docker daemon answers (the local test image is built first),
# else they run containers as host processes. RUNTIME=docker|containerd|process|fake chooses;
# REPLICAS and AGENTS choose how many. `flotilla up` applies a demo Deployment (NO_DEMO=1:
# none) and prints what to type next. Installs what it needs first.
# Each step says what it does and how long it took; `flotilla up` then numbers its own.
set -euo pipefail
cd "$(dirname "$0")/.."

# step WHAT COMMAND...: run COMMAND, saying WHAT before and how long it took after.
step() {
  local what=$1 start
  shift
  echo "run-cluster: $what …"
  start=$(date +%s%N)
  "$@"
  local ms=$((($(date +%s%N) - start) / 1000000))
  printf 'run-cluster: %s: done in %d.%d s\n' "$what" $((ms / 1000)) $((ms % 1000 / 100))
}

runtime="${RUNTIME:-auto}"
if [ "$runtime" = auto ] && docker info >/dev/null 2>&1; then
  runtime=docker
fi
case "$runtime" in
  # The docker and containerd agents program Services with nftables.
  docker | containerd) step "checking system packages" scripts/install-deps.sh etcd-client nftables conntrack ;;
  *) step "checking system packages" scripts/install-deps.sh etcd-client ;;
esac
up_flags=()
case "$runtime" in
  docker) step "building the test image flotilla/busybox:latest into docker" scripts/make-test-image ;;
  containerd)
    # The agents' private containerd (the one flotilla up would start), so the image goes
    # into the daemon the agents use.
    containerd_dir=/var/tmp/flotilla-containerd
    socket=$containerd_dir/containerd.sock
    start_containerd() { scripts/start-containerd "$containerd_dir" >/dev/null; }
    step "starting containerd ($socket)" start_containerd
    step "building the test image flotilla/busybox:latest into containerd" \
      scripts/make-test-image --containerd "$socket"
    up_flags+=(--containerd-address "$socket")
    ;;
esac
[ -n "${NO_DEMO:-}" ] && up_flags+=(--no-demo)
step "building flotilla (cargo build --release --bin flotilla; minutes the first time)" \
  cargo build --release --bin flotilla
echo "run-cluster: starting the cluster (flotilla up --dir .flotilla-cluster)"
exec "${CARGO_TARGET_DIR:-target}/release/flotilla" up --dir .flotilla-cluster --replicas "${REPLICAS:-3}" \
  --agents "${AGENTS:-2}" --agent-runtime "$runtime" "${up_flags[@]}"
