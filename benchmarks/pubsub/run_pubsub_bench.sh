#!/usr/bin/env bash
# run_pubsub_bench.sh: ringcache's cluster pub/sub (3 nodes) against Redis's
# PUBLISH/SUBSCRIBE (one redis-server), side by side in one run: publishes/s, delivery
# latency p50/p99 and the servers' CPU per message, with 1 and 100 subscribers.
# pubsub_bench does the measuring (see its header); this script starts the servers on
# 127.0.0.1 with free ports and stops them. Figures: docs/benchmarks.md, "Pub/sub".
#
# Usage: run_pubsub_bench.sh --bench BIN --ringcached BIN [--quick] [-- bench flags...]
# Exit: the bench's status; 77 (skip) when ringcached or redis-server is missing.
set -euo pipefail

BENCH="" RINGCACHED="" QUICK=0 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) BENCH="$2"; shift ;;
    --ringcached) RINGCACHED="$2"; shift ;;
    --quick) QUICK=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_pubsub_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -x "$BENCH" ]] || { echo "run_pubsub_bench.sh: missing --bench binary" >&2; exit 2; }
[[ -x "$RINGCACHED" ]] || { echo "run_pubsub_bench.sh: SKIP: ringcached not found"; exit 77; }
REDIS_SERVER="$(command -v redis-server || true)"
[[ -n "$REDIS_SERVER" ]] || { echo "run_pubsub_bench.sh: SKIP: redis-server not found (scripts/install-deps.sh installs it)"; exit 77; }

source "$(dirname "$0")/../local_nodes.sh"
nodes_begin pubsub-bench

start_node 1
a1="$addr"
start_node 2 "$a1"
a2="$addr"
start_node 3 "$a1"
a3="$addr"
ring_pids="${pids[0]},${pids[1]},${pids[2]}"

# A free port for redis-server: bind port 0, read it back, release it.
port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
pids+=("$!")
redis_pid="$!"
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

flags=()
if (( QUICK )); then flags=(--subscribers 1,4 --messages 300 --rounds 1); fi
"$BENCH" --ringcache "$a1,$a2,$a3" --ringcache-pids "$ring_pids" \
  --redis "127.0.0.1:$port" --redis-pid "$redis_pid" "${flags[@]}" "${EXTRA[@]}"
