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

dir="$(mktemp -d /tmp/ringcache-client-bench.XXXXXX)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# start_node <i> [seed]: starts node n<i>; sets $addr to its gRPC address. (Not called in
# $(...): the node would inherit the substitution's pipe and keep it open.)
addr=""
start_node() {
  local i="$1" seed="${2:-}" args
  args=(--node-id "n$i" --listen 127.0.0.1:0 --metrics-listen "" --memory 256MiB
        --replication-factor 2 --log-level warn --ready-file "$dir/n$i.ready")
  [[ -n "$seed" ]] && args+=(--seeds "$seed")
  "$RINGCACHED" "${args[@]}" >/dev/null 2>"$dir/n$i.log" &
  pids+=("$!")
  local waited=0
  until [[ -s "$dir/n$i.ready" ]]; do
    if (( waited >= 200 )); then echo "n$i did not start:" >&2; cat "$dir/n$i.log" >&2; exit 1; fi
    sleep 0.05; waited=$((waited + 1))
  done
  addr="$(sed -n 's/^grpc=//p' "$dir/n$i.ready")"
}

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
