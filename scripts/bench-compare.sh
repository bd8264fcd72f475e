#!/usr/bin/env bash
# Same load against a 3-member etcd 3.4 cluster and a 3-replica flotilla cluster on this
# machine, one after the other, each on a fresh cluster; prints one JSON line per run.
#
#   scripts/bench-compare.sh OUT_DIR [ROUNDS]
#
# Needs a release build (cargo build --release --bin flotilla) and Debian's etcd-server.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: $0 OUT_DIR [ROUNDS]}
rounds=${2:-1}
bin="${CARGO_TARGET_DIR:-target}/release/flotilla"
mkdir -p "$out"

run_matrix() { # system endpoints
    local sys=$1 ep=$2
    "$bin" bench --endpoints "$ep" --op all --clients 1 --total 3000 --json | sed "s/^{/{\"system\":\"$sys\",/"
    "$bin" bench --endpoints "$ep" --op all --clients 16 --total 20000 --json | sed "s/^{/{\"system\":\"$sys\",/"
    "$bin" bench --endpoints "$ep" --op all --clients 128 --total 20000 --json | sed "s/^{/{\"system\":\"$sys\",/"
}

for r in $(seq 1 "$rounds"); do
    rm -rf "$out/etcd"
    scripts/etcd-cluster.sh start "$out/etcd" >/dev/null
    run_matrix etcd http://127.0.0.1:22379,http://127.0.0.1:22479,http://127.0.0.1:22579 | tee -a "$out/results.jsonl"
    scripts/etcd-cluster.sh stop "$out/etcd" >/dev/null

    rm -rf "$out/flotilla"
    # Plain HTTP like the etcd it is compared with (scripts/bench-tls.sh measures TLS).
    "$bin" up --dir "$out/flotilla" --insecure-plaintext >"$out/up.log" 2>&1 &
    up=$!
    for _ in $(seq 1 120); do grep -q "replicas ready" "$out/up.log" && break; sleep 0.5; done
    ep=$(python3 -c "import json,sys; print(','.join(r['client_url'] for r in json.load(open(sys.argv[1]))['replicas']))" "$out/flotilla/cluster.json")
    run_matrix flotilla "$ep" | tee -a "$out/results.jsonl"
    kill -TERM "$up"; wait "$up" || true
done
