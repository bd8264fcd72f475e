#!/usr/bin/env bash
# Run a 3-member etcd 3.4 cluster on loopback, as the baseline for `flotilla bench`.
#
#   scripts/etcd-cluster.sh start DIR   # data, logs (DIR/eN.log) and pids (DIR/eN.pid) under DIR
#   scripts/etcd-cluster.sh stop DIR
#
# Members e1..e3 listen for clients on 127.0.0.1:22379/22479/22579 and for peers on
# 22380/22480/22580. Heartbeat and election timeouts are etcd's defaults (100 ms / 1000 ms),
# so the figures compare with a stock deployment. `start` returns once
# `etcdctl endpoint health` passes on all three members, or fails after START_TIMEOUT_S.
set -euo pipefail

readonly MEMBERS=(e1 e2 e3)
readonly CLIENT_PORTS=(22379 22479 22579)
readonly PEER_PORTS=(22380 22480 22580)
# A cold 3-member cluster elects a leader within a few election timeouts; 30 s leaves room
# for a loaded 2-core machine without hiding a cluster that will never form.
readonly START_TIMEOUT_S=30
# etcd flushes and exits on SIGTERM well within this; past it we SIGKILL.
readonly STOP_TIMEOUT_S=10

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

client_endpoints() {
    local eps=() p
    for p in "${CLIENT_PORTS[@]}"; do eps+=("http://127.0.0.1:$p"); done
    (IFS=,; echo "${eps[*]}")
}

initial_cluster() {
    local parts=() i
    for i in "${!MEMBERS[@]}"; do
        parts+=("${MEMBERS[$i]}=http://127.0.0.1:${PEER_PORTS[$i]}")
    done
    (IFS=,; echo "${parts[*]}")
}

start() {
    local dir=$1 i name pid cluster token
    command -v etcd >/dev/null || { echo "etcd not on PATH (apt-get install etcd-server)" >&2; exit 1; }
    mkdir -p "$dir"
    cluster=$(initial_cluster)
    # A fresh token per start keeps members of an earlier, half-deleted cluster from joining.
    token="flotilla-bench-$$-$(date +%s)"
    for i in "${!MEMBERS[@]}"; do
        name=${MEMBERS[$i]}
        if [[ -f "$dir/$name.pid" ]] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
            echo "$name already running (pid $(cat "$dir/$name.pid")); stop it first" >&2
            exit 1
        fi
        local state=new
        [[ -d "$dir/$name.etcd/member" ]] && state=existing
        etcd --name "$name" \
            --data-dir "$dir/$name.etcd" \
            --listen-client-urls "http://127.0.0.1:${CLIENT_PORTS[$i]}" \
            --advertise-client-urls "http://127.0.0.1:${CLIENT_PORTS[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${PEER_PORTS[$i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${PEER_PORTS[$i]}" \
            --initial-cluster "$cluster" \
            --initial-cluster-token "$token" \
            --initial-cluster-state "$state" \
            --logger zap \
            >"$dir/$name.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/$name.pid"
    done

    local eps deadline
    eps=$(client_endpoints)
    deadline=$((SECONDS + START_TIMEOUT_S))
    until ETCDCTL_API=3 etcdctl --endpoints "$eps" --dial-timeout 1s --command-timeout 2s \
        endpoint health >/dev/null 2>&1; do
        for name in "${MEMBERS[@]}"; do
            if ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
                echo "$name exited during start; see $dir/$name.log" >&2
                stop "$dir"
                exit 1
            fi
        done
        if ((SECONDS >= deadline)); then
            echo "cluster not healthy after ${START_TIMEOUT_S}s; see $dir/*.log" >&2
            stop "$dir"
            exit 1
        fi
        sleep 0.2
    done
    echo "etcd cluster up: $eps"
}

stop() {
    local dir=$1 name pid f
    for name in "${MEMBERS[@]}"; do
        f="$dir/$name.pid"
        [[ -f "$f" ]] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            local deadline=$((SECONDS + STOP_TIMEOUT_S))
            while kill -0 "$pid" 2>/dev/null; do
                if ((SECONDS >= deadline)); then
                    kill -9 "$pid" 2>/dev/null || true
                    break
                fi
                sleep 0.1
            done
        fi
        rm -f "$f"
    done
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) usage ;;
esac
