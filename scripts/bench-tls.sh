#!/usr/bin/env bash
# What TLS costs the store: the same load against a 3-replica flotilla cluster on plain
# HTTP, then on TLS everywhere (mutual TLS between replicas, the etcd API over TLS with
# --client-cert-auth, the bench presenting the admin's certificate). Prints one JSON line
# per run, tagged "plain" or "tls".
#
#   scripts/bench-tls.sh OUT_DIR [ROUNDS]
#
# Needs a release build (cargo build --release --bin flotilla), or FLOTILLA_BIN=path.
# TOTAL=N sets the requests per run (default 20000; 3000 with one client).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: $0 OUT_DIR [ROUNDS]}
rounds=${2:-1}
bin="${FLOTILLA_BIN:-${CARGO_TARGET_DIR:-target}/release/flotilla}"
mkdir -p "$out"

# start SCHEME DIR [TLS FLAGS...]: three replicas on 127.0.0.1, client ports 23x79.
start() {
  local scheme=$1 dir=$2
  shift 2
  local cluster="n1=$scheme://127.0.0.1:23180,n2=$scheme://127.0.0.1:23280,n3=$scheme://127.0.0.1:23380"
  local plain=()
  [ "$scheme" = http ] && plain=(--insecure-plaintext)
  for i in 1 2 3; do
    "$bin" server --name "n$i" --data-dir "$dir/n$i" --listen-api-url "" \
      --listen-peer-urls "$scheme://127.0.0.1:23${i}80" --listen-client-urls "$scheme://127.0.0.1:23${i}79" \
      --initial-cluster "$cluster" "${plain[@]}" "$@" >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
  done
}

stop() {
  local dir=$1
  for i in 1 2 3; do kill "$(cat "$dir/n$i.pid")" 2>/dev/null || true; done
  for i in 1 2 3; do while kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null; do sleep 0.1; done; done
}

# run TAG ENDPOINTS [CLIENT TLS FLAGS...]: wait for a leader, then the load.
run() {
  local tag=$1 ep=$2
  shift 2
  for _ in $(seq 1 100); do "$bin" status --endpoints "$ep" "$@" >/dev/null 2>&1 && break; sleep 0.2; done
  for clients in 1 16 128; do
    local total=${TOTAL:-20000}
    [ "$clients" = 1 ] && total=${TOTAL:-3000}
    "$bin" bench --endpoints "$ep" "$@" --op all --clients "$clients" --total "$total" --json |
      sed "s/^{/{\"system\":\"$tag\",/"
  done
}

for _ in $(seq 1 "$rounds"); do
  rm -rf "$out/plain" "$out/tls"
  mkdir -p "$out/plain" "$out/tls"
  start http "$out/plain"
  run plain http://127.0.0.1:23179,http://127.0.0.1:23279,http://127.0.0.1:23379 | tee -a "$out/results.jsonl"
  stop "$out/plain"

  pki="$out/tls/pki"
  "$bin" pki init --dir "$pki" --host 127.0.0.1 >/dev/null
  start https "$out/tls" \
    --peer-cert-file "$pki/server.crt" --peer-key-file "$pki/server.key" --peer-trusted-ca-file "$pki/ca.crt" \
    --cert-file "$pki/server.crt" --key-file "$pki/server.key" --trusted-ca-file "$pki/ca.crt" --client-cert-auth
  run tls https://127.0.0.1:23179,https://127.0.0.1:23279,https://127.0.0.1:23379 \
    --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" | tee -a "$out/results.jsonl"
  stop "$out/tls"
done
