# local_nodes.sh: ringcached nodes on 127.0.0.1 for a benchmark script, sourced after it
# has set RINGCACHED:
#
#   source "$(dirname "$0")/../local_nodes.sh"
#   nodes_begin client-bench      # work dir /tmp/ringcache-client-bench.XXXXXX
#   start_node 1; a1="$addr"      # a new cluster
#   start_node 2 "$a1"            # joins through n1
#
# Each node: --node-id n<i>, a free port, no metrics port, 256MiB, replication factor 2,
# then the flags in $node_extra_args (if the script set it after sourcing), its log in the
# work dir. $pids holds the nodes' pids (and whatever else the script
# appends); on exit every one is sent SIGTERM and waited for, and the work dir removed.

pids=()
addr=""
node_extra_args=()  # More flags for every node, set by the script before start_node.

nodes_cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}

# nodes_begin <name>: makes the work dir $dir and sets the exit trap.
nodes_begin() {
  dir="$(mktemp -d "/tmp/ringcache-$1.XXXXXX")"
  trap nodes_cleanup EXIT
}

# start_node <i> [seed]: starts node n<i>; sets $addr to its gRPC address. (Not called in
# $(...): the node would inherit the substitution's pipe and keep it open.)
start_node() {
  local i="$1" seed="${2:-}" args
  args=(--node-id "n$i" --listen 127.0.0.1:0 --metrics-listen "" --memory 256MiB
        --replication-factor 2 --log-level warn --ready-file "$dir/n$i.ready")
  [[ -n "$seed" ]] && args+=(--seeds "$seed")
  args+=("${node_extra_args[@]}")
  "$RINGCACHED" "${args[@]}" >/dev/null 2>"$dir/n$i.log" &
  pids+=("$!")
  local waited=0
  until [[ -s "$dir/n$i.ready" ]]; do
    if (( waited >= 200 )); then echo "n$i did not start:" >&2; cat "$dir/n$i.log" >&2; exit 1; fi
    sleep 0.05; waited=$((waited + 1))
  done
  addr="$(sed -n 's/^grpc=//p' "$dir/n$i.ready")"
}
