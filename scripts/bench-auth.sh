#!/usr/bin/env bash
# What the replicas' own PKI and ServiceAccount tokens cost, on one machine:
# - --auto-pki: seconds from starting the first replica to its admin kubeconfig working,
#   and from starting a second one (--join with the server token) to it being a voter;
# - authentication: N sequential GETs on one kept-alive connection (one curl), as the admin
#   (client certificate) and as a ServiceAccount (bearer JWT; the account may `view`).
# Prints one JSON line.
#
#   scripts/bench-auth.sh [N]
#
# Uses FLOTILLA_BIN (default: the debug build in CARGO_TARGET_DIR or target).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
bin="${FLOTILLA_BIN:-${CARGO_TARGET_DIR:-target}/debug/flotilla}"
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
now() { date +%s.%N; }

# replica NAME PORT_PREFIX [FLAGS...]: https on 127.0.0.1:<prefix>79/80/43.
replica() {
  local name=$1 p=$2
  shift 2
  "$bin" server --name "$name" --data-dir "$dir/$name" --listen-client-urls "https://127.0.0.1:${p}79" \
    --listen-peer-urls "https://127.0.0.1:${p}80" --listen-api-url "https://127.0.0.1:${p}43" "$@" \
    >"$dir/$name.log" 2>&1 &
  pids+=($!)
}

start=$(now)
replica n1 241
export KUBECONFIG="$dir/n1/pki/admin.kubeconfig"
until [ -f "$KUBECONFIG" ] && kubectl get namespace default >/dev/null 2>&1; do sleep 0.05; done
founded=$(now)

replica n2 242 --join https://127.0.0.1:24179 --join-api-url https://127.0.0.1:24143 \
  --server-token "$(cat "$dir/n1/pki/server-token")"
pki="$dir/n1/pki"
members() {
  "$bin" member list --endpoints https://127.0.0.1:24179 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" \
    --key "$pki/admin.key" 2>/dev/null
}
until members | grep -q "n2.*voter\|voter.*n2"; do sleep 0.05; done
joined=$(now)

until kubectl get serviceaccount default >/dev/null 2>&1; do sleep 0.1; done
kubectl create clusterrolebinding bench-view --clusterrole=view --serviceaccount=default:default >/dev/null
token=$(kubectl create token default --duration 1h)
url=https://127.0.0.1:24143/api/v1/namespaces/default
urls=()
for _ in $(seq "$n"); do urls+=("$url"); done
timed() {
  local t0 t1
  t0=$(now)
  curl -sf --cacert "$pki/ca.crt" "$@" "${urls[@]}" >/dev/null
  t1=$(now)
  echo "($t1 - $t0) * 1000000 / $n" | bc
}
cert_us=$(timed --cert "$pki/admin.crt" --key "$pki/admin.key")
token_us=$(timed -H "Authorization: Bearer $token")

printf '{"found_s":%.2f,"join_s":%.2f,"requests":%d,"client_cert_us_per_get":%d,"sa_token_us_per_get":%d}\n' \
  "$(echo "$founded - $start" | bc)" "$(echo "$joined - $founded" | bc)" "$n" "$cert_us" "$token_us"
