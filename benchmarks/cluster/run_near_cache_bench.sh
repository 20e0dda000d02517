#!/usr/bin/env bash
# run_near_cache_bench.sh: ringcache::client's near cache on a local 3-node cluster with
# --keyspace-events KA: Gets of a hot key with and without it, side by side, and the delay
# until a write through another client is served. ringcache_near_cache_bench does the
# measuring (see its header); this script starts the nodes on 127.0.0.1 with free ports
# and stops them. Figures: docs/benchmarks.md, "Near cache".
#
# Usage: run_near_cache_bench.sh --bench BIN --ringcached BIN [--quick] [-- bench flags...]
# Exit: the bench's status; 77 (skip) when ringcached is missing.
set -euo pipefail

BENCH="" RINGCACHED="" QUICK=0 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) BENCH="$2"; shift ;;
    --ringcached) RINGCACHED="$2"; shift ;;
    --quick) QUICK=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_near_cache_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -x "$BENCH" ]] || { echo "run_near_cache_bench.sh: missing --bench binary" >&2; exit 2; }
[[ -x "$RINGCACHED" ]] || { echo "run_near_cache_bench.sh: SKIP: ringcached not found"; exit 77; }

source "$(dirname "$0")/../local_nodes.sh"
node_extra_args=(--keyspace-events KA)
nodes_begin near-cache-bench

start_node 1
a1="$addr"
start_node 2 "$a1"
a2="$addr"
start_node 3 "$a1"
a3="$addr"

flags=()
if (( QUICK )); then flags=(--requests 2000 --rounds 2 --writes 20); fi
"$BENCH" --seeds "$a1,$a2,$a3" --pids "${pids[0]},${pids[1]},${pids[2]}" "${flags[@]}" "${EXTRA[@]}"
