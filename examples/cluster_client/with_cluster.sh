#!/usr/bin/env bash
# Runs a command against a fresh 3-node cluster on 127.0.0.1:
#   with_cluster.sh RINGCACHED COMMAND [ARGS...]
# Every "{seeds}" in ARGS becomes the nodes' HOST:PORTs, comma-separated. n1 bootstraps
# the cluster; n2 and n3 join through it (each writes its ready file once it holds a view);
# the command runs once every member serves.
# Exit code: the command's; 1 if a node does not start or does not stop cleanly.
set -euo pipefail
ringcached=$1
shift
work=$(mktemp -d "${TMPDIR:-/tmp}/ringcache-with-cluster.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_node ID [flags...]: starts a node, waits (bounded) for its ready file, sets ADDR.
start_node() {
  local id=$1
  shift
  mkdir -p "$work/$id"
  "$ringcached" --node-id "$id" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --ready-file "$work/$id/ready" --log-level warn "$@" >"$work/$id/log" 2>&1 &
  pids+=($!)
  local i
  for ((i = 0; i < 1000; i++)); do  # 1000 x 20 ms = 20 s
    [[ -f $work/$id/ready ]] && break
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "$id exited before it was ready; its log:" >&2
      cat "$work/$id/log" >&2
      return 1
    fi
    sleep 0.02
  done
  ADDR=$(sed -n 's/^grpc=//p' "$work/$id/ready")
  [[ -n $ADDR ]] || { echo "$id: no ready file with a grpc= line within 20 s" >&2; cat "$work/$id/log" >&2; return 1; }
}

start_node n1
first=$ADDR
start_node n2 --seeds "$first"
second=$ADDR
start_node n3 --seeds "$first"
seeds="$first,$second,$ADDR"

# A joiner is JOINING until its ranges have arrived (docs/design/failover.md): wait
# (bounded) until every member serves, as an operator would with `cluster status`, so
# that keys have their replicas. ringcache-cli is looked up next to ringcached (the build
# tree) or on PATH.
cli=$(dirname "$ringcached")/../cli/ringcache-cli
[[ -x $cli ]] || cli=$(command -v ringcache-cli || true)
if [[ -n $cli ]]; then
  for ((i = 0; i < 1000; i++)); do  # 1000 x 20 ms = 20 s
    status=$("$cli" --addr "$first" cluster status 2>&1) && ! grep -qE 'joining|leaving' <<<"$status" && break
    sleep 0.02
  done
fi

args=()
for arg in "$@"; do args+=("${arg//\{seeds\}/$seeds}"); done
rc=0
"${args[@]}" || rc=$?

for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do
  node_rc=0
  for ((i = 0; i < 750; i++)); do  # 15 s; the trap kills what is left
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  wait "$pid" || node_rc=$?
  if [[ $node_rc != 0 ]]; then
    echo "with_cluster.sh: a node exited with $node_rc after SIGTERM (want 0)" >&2
    for d in "$work"/n*; do echo "--- $d/log" >&2; cat "$d/log" >&2; done
    [[ $rc != 0 ]] || rc=1
  fi
done
pids=()
exit "$rc"
