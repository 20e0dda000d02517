# Shell helpers to run one ringcached on 127.0.0.1 for a test. Source it, then:
#   node_start RINGCACHED WORKDIR [extra flags...]   sets NODE_PID, NODE_ADDR, NODE_LOG
#   node_stop                                        SIGTERM, SIGKILL after 10 s; sets NODE_RC
# Every wait is bounded. Callers use `set -euo pipefail`.

node_start() {
  local binary=$1 dir=$2
  shift 2
  NODE_LOG=$dir/ringcached.log
  rm -f "$dir/ready"
  "$binary" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --ready-file "$dir/ready" "$@" \
    >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  local i
  for ((i = 0; i < 500; i++)); do  # 500 x 20 ms = 10 s
    [[ -f $dir/ready ]] && break
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
      echo "ringcached exited before it was ready; its log:" >&2
      cat "$NODE_LOG" >&2
      return 1
    fi
    sleep 0.02
  done
  if [[ ! -f $dir/ready ]]; then
    echo "ringcached wrote no ready file within 10 s; its log:" >&2
    cat "$NODE_LOG" >&2
    kill -KILL "$NODE_PID" 2>/dev/null || true
    return 1
  fi
  NODE_ADDR=$(sed -n 's/^grpc=//p' "$dir/ready")
  [[ -n $NODE_ADDR ]] || { echo "no grpc= line in the ready file" >&2; return 1; }
}

node_stop() {
  NODE_RC=
  [[ -n ${NODE_PID:-} ]] || return 0
  kill -TERM "$NODE_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 500; i++)); do  # 10 s
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.02
  done
  if kill -0 "$NODE_PID" 2>/dev/null; then
    echo "ringcached did not exit within 10 s of SIGTERM: killing it" >&2
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
  NODE_RC=0
  wait "$NODE_PID" || NODE_RC=$?
  NODE_PID=
}
