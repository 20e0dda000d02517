#!/usr/bin/env bash
# run_failover_bench.sh: failover and rebalancing figures on real ringcached nodes, in one
# run (ringcache_failover_bench starts and stops the nodes itself, on 127.0.0.1 with free
# ports; see its header for exactly what is measured):
#
#   1. kill -9 of a primary (3 nodes, replication factor 2) under a closed-loop write load,
#      with write concern 0 and then 1: detection time (kill -> the others' view shows the
#      node not SERVING), unavailability window (first failed write of its keys -> first
#      success), acknowledged writes lost, replication lag right before the kill.
#   2. a 4th node joins 3 nodes holding 1 M keys of 32 B: time until it is SERVING and
#      nothing is under-replicated, keys and MiB the sources sent, keys/s and MiB/s.
#
# Defaults use the nodes' default --heartbeat-interval-ms (200) and --failure-timeout-ms
# (1000). --quick: 20 000 keys and short loads (the ctest smoke run, label "bench").
# Exit: the bench's status; 77 (skip) when ringcached is missing.
#
# Usage: run_failover_bench.sh [--quick] [--build-dir DIR] [--bench BIN] [--ringcached BIN]
#          [-- bench flags...]
set -euo pipefail

BENCH="" RINGCACHED="" BUILD_DIR="" QUICK=0 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) BENCH="$2"; shift ;;
    --ringcached) RINGCACHED="$2"; shift ;;
    --build-dir) BUILD_DIR="$2"; shift ;;
    --quick) QUICK=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_failover_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n "$BUILD_DIR" ]]; then
  : "${BENCH:=$BUILD_DIR/benchmarks/failover/ringcache_failover_bench}"
  : "${RINGCACHED:=$BUILD_DIR/daemon/node/ringcached}"
fi
[[ -x "$BENCH" ]] || { echo "run_failover_bench.sh: missing --bench binary '$BENCH'" >&2; exit 2; }
[[ -x "$RINGCACHED" ]] || { echo "run_failover_bench.sh: SKIP: ringcached not found"; exit 77; }

dir="$(mktemp -d /tmp/ringcache-failover-bench.XXXXXX)"
keep=0
cleanup() { if (( keep )); then echo "node logs kept in $dir" >&2; else rm -rf "$dir"; fi; }
trap cleanup EXIT

args=(--ringcached "$RINGCACHED" --log-dir "$dir")
if (( QUICK )); then
  args+=(--keys 20000 --warmup-s 0.5 --after-s 1 --writers 2 --memory 64MiB)
fi
echo "ringcached $("$RINGCACHED" --version 2>/dev/null | head -1); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
"$BENCH" "${args[@]}" "${EXTRA[@]}"
rc=$?
set -e
(( rc == 0 )) || keep=1
exit "$rc"
