#!/usr/bin/env bash
# run_client_bench.sh: the smart C++ client vs a plain gRPC client whose calls one node
# forwards one hop, on a local 3-node cluster (replication factor 2), in one run: unary Gets
# of keys that node does not own, then batches of 16 keys over every owner (the client's
# MultiGet vs Pipeline messages through that node).
# ringcache_client_bench does the measuring (see its header); this script starts the
# nodes on 127.0.0.1 with free ports and stops them. Figures: docs/benchmarks.md.
#
# Usage: run_client_bench.sh --bench BIN --ringcached BIN [--quick] [-- bench flags...]
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
    *) echo "run_client_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -x "$BENCH" ]] || { echo "run_client_bench.sh: missing --bench binary" >&2; exit 2; }
[[ -x "$RINGCACHED" ]] || { echo "run_client_bench.sh: SKIP: ringcached not found"; exit 77; }

source "$(dirname "$0")/../local_nodes.sh"
nodes_begin client-bench

start_node 1
a1="$addr"
start_node 2 "$a1"
start_node 3 "$a1"

# The batch phase: Pipeline messages of 16 Gets through n1 vs the client's MultiGet of 16;
# the nodes' pids give their CPU per key.
args=(--seed "$a1" --batch 16 --pids "$(IFS=,; echo "${pids[*]}")")
if (( QUICK )); then
  args+=(--duration-s 0.5 --rounds 1 --keys 300 --threads 2 --streams 1 --window 2)
fi
echo "3 nodes, replication factor 2; smart client vs calls through ${a1} (n1)"
"$BENCH" "${args[@]}" "${EXTRA[@]}"
