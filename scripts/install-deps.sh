#!/usr/bin/env bash
# Installs the system packages flotilla builds and tests with, when they are missing.
# Debian/Ubuntu only; needs root (or sudo). Sourced by run-cluster.sh and test.sh.
set -euo pipefail

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s protobuf-compiler >/dev/null 2>&1 || need+=(protobuf-compiler)
dpkg -s libprotobuf-dev >/dev/null 2>&1 || need+=(libprotobuf-dev)
if [ -z "${ROCKSDB_COMPILE:-}" ]; then
  dpkg -s librocksdb-dev >/dev/null 2>&1 || need+=(librocksdb-dev)
fi
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The official Python client, which tests/python/client_check.py drives. pip runs as the
# calling user (a non-root user gets a --user install); Debian's own python3 is "externally
# managed", and PIP_BREAK_SYSTEM_PACKAGES lets pip install into it.
if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "installing: python3-pip" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null
  fi
  echo "installing: python kubernetes==37.0.2" >&2
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check 'kubernetes==37.0.2' >/dev/null
fi
