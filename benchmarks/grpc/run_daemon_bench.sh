#!/usr/bin/env bash
# run_daemon_bench.sh: ringcached against its baselines, side by side, in one run.
#
#   1. unary Get ops/s, 64 in flight: ringcached vs the empty-RPC floor    target >= 0.9x
#   2. unary Get p50 latency, 1 in flight: ringcached vs the floor         target <= 1.2x
#   3. Pipeline (16 ops per message, 50 streams) and MultiGet (16 keys per call, 50 calls
#      outstanding) ops/s vs Redis 7 (redis-server from Debian) driven by
#      `redis-benchmark -t get -P 16 -c 50 -d 32 -r KEYS`                  target >= 0.8x
#      (goal 1.0x); the floor's Pipeline/MultiGet figures are shown too.
#   4. VmRSS of ringcached filled with 32 B values past its --memory budget
#                                                    target <= 1.15 x budget + 64 MiB
#
# The floor is ringcache_empty_server --sync-services: the same async completion-queue
# server with the same --threads and, like ringcached, the health and reflection services
# (whose sync poller pool is part of ringcached's thread layout), answering fixed values.
# The bare floor (no health/reflection) is measured too, for information. All Gets of
# ringcached hit prefilled keys and are checked (loadgen --verify).
#
# Every comparison rotates its contenders run by run (A B C, B C A, ...) and reports the
# median of --repeats runs. Nothing is pinned: client and servers share the machine's
# cores, so the ratios, not the absolute figures, are the point; the server's CPU time per
# operation (from /proc) is printed too, being much less sensitive to other load. Targets
# are printed PASS/FAIL; they fail the script only with --strict. The script fails (1)
# when a server cannot start or a run reports errors, wrong values or misses; it skips
# (77) when ringcached is not built.
#
# Usage: run_daemon_bench.sh [--quick] [--strict] [--build-dir DIR] [--repeats N]
#          [--duration-s S] [--loadgen BIN] [--empty-server BIN] [--ringcached BIN]
set -euo pipefail

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
STRICT=0
BUILD_DIR=""
LOADGEN=""
EMPTY_SERVER=""
RINGCACHED=""
REPEATS=""
DURATION=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --strict) STRICT=1 ;;
    --build-dir) BUILD_DIR="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --empty-server) EMPTY_SERVER="$2"; shift ;;
    --ringcached) RINGCACHED="$2"; shift ;;
    --repeats) REPEATS="$2"; shift ;;
    --duration-s) DURATION="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_daemon_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ -n "$BUILD_DIR" ]]; then
  : "${LOADGEN:=$BUILD_DIR/benchmarks/grpc/ringcache_loadgen}"
  : "${EMPTY_SERVER:=$BUILD_DIR/benchmarks/grpc/ringcache_empty_server}"
  : "${RINGCACHED:=$BUILD_DIR/daemon/node/ringcached}"
fi
for bin in "$LOADGEN" "$EMPTY_SERVER"; do
  if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "run_daemon_bench.sh: missing binary '$bin' (give --build-dir or --loadgen/--empty-server)" >&2
    exit 2
  fi
done
if [[ -z "$RINGCACHED" || ! -x "$RINGCACHED" ]]; then
  echo "run_daemon_bench.sh: SKIP: ringcached not found ('$RINGCACHED')"
  exit 77
fi

# --- settings -------------------------------------------------------------------------
THREADS=$(nproc)           # server completion-queue threads, both servers
KEYS=100000                # prefilled keys, uniform Gets over them
VALUE=32                   # value bytes everywhere
P=16                       # ops per Pipeline message / MultiGet call / redis -P
CONNS=50                   # redis-benchmark -c; our streams / outstanding MultiGets
CLIENT_THREADS=2           # section 3: loadgen --threads and redis-benchmark --threads
RSS_MEMORY_MIB=256         # --memory of the RSS run
if [[ $QUICK == 1 ]]; then
  : "${REPEATS:=1}"; : "${DURATION:=0.5}"; WARMUP=0.2
  KEYS=20000; RSS_MEMORY_MIB=32; REDIS_N=100000; REDIS_FILL_N=100000; FILL_S=30
else
  : "${REPEATS:=5}"; : "${DURATION:=5}"; WARMUP=1
  REDIS_N=3000000; REDIS_FILL_N=$((KEYS * 10)); FILL_S=240
fi
RUN_TIMEOUT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 40 }')

WORK=$(mktemp -d /tmp/ringcache-daemon-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILED=0
load() { echo "load: $(uptime | sed 's/.*load average/load average/')"; }
fail() { echo "FAILED: $*"; FAILED=1; }

# start_server NAME READY_FILE CMD... : starts CMD in the background, waits (10 s) for the
# ready file and sets SERVER_PID and SERVER_ADDR.
start_server() {
  local name="$1" ready="$2"; shift 2
  rm -f "$ready"
  "$@" >"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    [[ -s "$ready" ]] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  SERVER_ADDR=$(sed -n 's/^grpc=//p' "$ready" 2>/dev/null || true)
  if [[ -z "$SERVER_ADDR" ]]; then
    echo "run_daemon_bench.sh: $name did not become ready within 10 s; its log:" >&2
    tail -20 "$WORK/$name.log" >&2
    exit 1
  fi
}

stop_server() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cpu_per_op TICKS OPS: microseconds of CPU per operation.
cpu_per_op() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print 0 }'; }

# loadgen OUT_NAME SERVER_PID ARGS... : one run; appends its RESULT line, plus the server's
# CPU time per operation (srv_cpu_us_per_op, over the whole run), to $WORK/OUT_NAME.results
# and prints it. A failing run (errors, wrong values, misses) fails the script.
loadgen() {
  local out="$1" pid="$2"; shift 2
  local log="$WORK/run.log"
  local rc=0 t0 t1
  t0=$(cpu_ticks "$pid")
  timeout "$RUN_TIMEOUT" "$LOADGEN" --duration-s "$DURATION" --warmup-s "$WARMUP" "$@" >"$log" 2>&1 || rc=$?
  t1=$(cpu_ticks "$pid")
  if [[ $rc != 0 ]]; then
    fail "loadgen $* (exit $rc):"
    sed 's/^/    /' "$log"
  fi
  local result all
  result=$(grep '^RESULT' "$log" || true)
  all=$(echo "$result" | sed -n 's/.* all_ops=\([0-9]*\).*/\1/p')
  result="$result srv_cpu_us_per_op=$(cpu_per_op $((t1 - t0)) "${all:-0}")"
  echo "$result" >>"$WORK/$out.results"
  printf '  %-28s %s\n' "$out" "${result#RESULT }"
}

# field FILE KEY: the values of KEY in a results file, one per line.
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$WORK/$1.results"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { field "$1" "$2" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# verdict RATIO OP TARGET
verdict() {
  awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (r == "n/a") { print "n/a"; exit }
    ok = (op == ">=") ? (r >= t) : (r <= t); print ok ? "PASS" : "FAIL" }'
}

echo "== ringcached benchmark vs the empty-RPC floor and Redis ($( [[ $QUICK == 1 ]] && echo quick || echo full ) run)"
echo "machine: $(nproc) cores, $(uname -r); server threads: $THREADS; repeats: $REPEATS x ${DURATION}s (+${WARMUP}s warm-up)"
echo "binaries: $RINGCACHED, $EMPTY_SERVER, $LOADGEN"
load

start_server ringcached "$WORK/rc.ready" "$RINGCACHED" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --ready-file "$WORK/rc.ready" --memory 1GiB --threads "$THREADS" --log-level warn
RC_PID=$SERVER_PID RC_ADDR=$SERVER_ADDR
# The floor: ringcached's gRPC layout (THREADS completion queues + the health/reflection
# sync poller pool) with nothing behind the rpcs. The bare floor drops health/reflection.
start_server floor "$WORK/floor.ready" "$EMPTY_SERVER" --listen 127.0.0.1:0 \
  --ready-file "$WORK/floor.ready" --threads "$THREADS" --sync-services
FLOOR_PID=$SERVER_PID FLOOR_ADDR=$SERVER_ADDR
start_server bare "$WORK/bare.ready" "$EMPTY_SERVER" --listen 127.0.0.1:0 \
  --ready-file "$WORK/bare.ready" --threads "$THREADS"
BARE_PID=$SERVER_PID BARE_ADDR=$SERVER_ADDR
echo "ringcached on $RC_ADDR (pid $RC_PID); floor on $FLOOR_ADDR (pid $FLOOR_PID); bare floor on $BARE_ADDR (pid $BARE_PID)"

# Prefill ringcached: every Get of the runs below hits and is checked (--verify).
"$LOADGEN" --addr "$RC_ADDR" --prefill --keys "$KEYS" --value-size "$VALUE" --mode unary \
  --inflight 1 --duration-s 0.01 --warmup-s 0 >"$WORK/prefill.log" 2>&1 \
  || { fail "prefill"; cat "$WORK/prefill.log"; }
grep '^prefill' "$WORK/prefill.log" || true

COMMON=(--keys "$KEYS" --value-size "$VALUE" --ops get)

# run_one NAME WHO ARGS...: one loadgen run of contender WHO (rc | floor | bare | redis).
run_one() {
  local name="$1" who="$2"; shift 2
  case $who in
    rc) loadgen "$name.rc" "$RC_PID" --addr "$RC_ADDR" "${COMMON[@]}" --verify "$@" ;;
    floor) loadgen "$name.floor" "$FLOOR_PID" --addr "$FLOOR_ADDR" "${COMMON[@]}" "$@" ;;
    bare) loadgen "$name.bare" "$BARE_PID" --addr "$BARE_ADDR" "${COMMON[@]}" "$@" ;;
    redis) redis_run ;;
  esac
}
# rotate NAME "WHO..." ARGS...: REPEATS rounds, the contenders' order rotating each round.
rotate() {
  local name="$1"; shift
  local -a who; read -r -a who <<<"$1"; shift
  local n=${#who[@]} i j
  for ((i = 0; i < REPEATS; i++)); do
    for ((j = 0; j < n; j++)); do run_one "$name" "${who[$(((i + j) % n))]}" "$@"; done
  done
}

# --- 1. unary Get throughput, 64 in flight ----------------------------------------------
echo
echo "-- 1. unary Get ops/s, 64 calls in flight (1 client thread, 2 channels)"
load
rotate unary64 "rc floor bare" --mode unary --inflight 64

# --- 2. unary Get latency, 1 in flight --------------------------------------------------
echo
echo "-- 2. unary Get latency per rpc, 1 call in flight"
load
rotate unary1 "floor rc bare" --mode unary --inflight 1

# --- 3. 16 ops per message vs Redis ------------------------------------------------------
echo
echo "-- 3. Gets, $P per message, $CONNS streams/calls/connections x $P = $((CONNS * P)) ops in flight,"
echo "   $CLIENT_THREADS client threads (loadgen --threads, redis-benchmark --threads)"
load
HAVE_REDIS=0
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null; then
  HAVE_REDIS=1
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --protected-mode no --daemonize no --logfile "$WORK/redis.log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 100); do
    [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && break
    sleep 0.1
  done
  [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] || { echo "redis-server did not start" >&2; exit 1; }
  echo "$(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
  timeout 300 redis-benchmark -p "$REDIS_PORT" -t set -P "$P" -c "$CONNS" -d "$VALUE" \
    -r "$KEYS" -n "$REDIS_FILL_N" -q >/dev/null 2>&1 || fail "redis prefill"
  echo "redis prefilled: dbsize=$(redis-cli -p "$REDIS_PORT" dbsize) of $KEYS keys"
else
  echo "redis-server/redis-benchmark not installed: the Redis comparison is skipped"
fi
REDIS_CMD=(redis-benchmark -p "${REDIS_PORT:-0}" -t get -P "$P" -c "$CONNS" -d "$VALUE" -n "$REDIS_N"
           -r "$KEYS" --threads "$CLIENT_THREADS" -q)
redis_run() {
  local out t0 t1
  t0=$(cpu_ticks "$REDIS_PID")
  # bash's `time` gives redis-benchmark's own CPU time (the client side's cost).
  { TIMEFORMAT='%U %S'; time timeout 300 "${REDIS_CMD[@]}" >"$WORK/redis.out" 2>&1; } 2>"$WORK/redis.time" || true
  t1=$(cpu_ticks "$REDIS_PID")
  out=$(tr '\r' '\n' <"$WORK/redis.out" | grep '^GET:' | tail -1 || true)
  local client; client=$(awk -v n="$REDIS_N" '{ printf "%.2f", ($1 + $2) * 1e6 / n }' "$WORK/redis.time")
  local rps
  rps=$(echo "$out" | sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p')
  if [[ -z "$rps" ]]; then fail "redis-benchmark: '$out'"; rps=0; fi
  local p50
  p50=$(echo "$out" | sed -n 's/.*p50=\([0-9.]*\) msec.*/\1/p')
  local cpu; cpu=$(cpu_per_op $((t1 - t0)) "$REDIS_N")
  echo "RESULT ops_per_s=$rps p50_ms=${p50:-0} client_cpu_us_per_op=$client srv_cpu_us_per_op=$cpu" \
    >>"$WORK/redis.results"
  printf '  %-28s %s client_cpu_us_per_op=%s srv_cpu_us_per_op=%s\n' redis "$out" "$client" "$cpu"
}
# Pipeline and MultiGet rounds interleave with Redis: redis, pipeline(rc), pipeline(floor),
# multiget(rc), multiget(floor), rotating.
PIPE_ARGS=(--mode pipeline --batch "$P" --streams "$CONNS" --inflight $((CONNS * P)) --channels 8
           --threads "$CLIENT_THREADS")
BATCH_ARGS=(--mode batch --batch "$P" --inflight $((CONNS * P)) --channels 8 --threads "$CLIENT_THREADS")
contenders=(pipe:rc pipe:floor batch:rc batch:floor)
[[ $HAVE_REDIS == 1 ]] && contenders=(redis "${contenders[@]}")
n=${#contenders[@]}
for ((i = 0; i < REPEATS; i++)); do
  for ((j = 0; j < n; j++)); do
    c=${contenders[$(((i + j) % n))]}
    case $c in
      redis) redis_run ;;
      pipe:*) run_one p16pipe "${c#pipe:}" "${PIPE_ARGS[@]}" ;;
      batch:*) run_one p16batch "${c#batch:}" "${BATCH_ARGS[@]}" ;;
    esac
  done
done
[[ $HAVE_REDIS == 1 ]] && stop_server "$REDIS_PID"
stop_server "$BARE_PID"
stop_server "$FLOOR_PID"
stop_server "$RC_PID"

# --- 4. RSS at the memory budget ---------------------------------------------------------
echo
echo "-- 4. RSS of ringcached --memory ${RSS_MEMORY_MIB}MiB filled with ${VALUE} B values past the budget"
load
start_server ringcached-rss "$WORK/rss.ready" "$RINGCACHED" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --ready-file "$WORK/rss.ready" --memory "${RSS_MEMORY_MIB}MiB" --threads "$THREADS" --log-level warn
RSS_PID=$SERVER_PID
RSS_START_KB=$(awk '/^VmRSS/ { print $2 }' "/proc/$RSS_PID/status")
if ! timeout $((FILL_S + 30)) "$LOADGEN" --addr "$SERVER_ADDR" --mode fill --value-size "$VALUE" \
    --fill-extra 0.25 --duration-s "$FILL_S" >"$WORK/fill.log" 2>&1; then
  fail "fill"
fi
sed 's/^/  /' "$WORK/fill.log"
RSS_KB=$(awk '/^VmRSS/ { print $2 }' "/proc/$RSS_PID/status")
RSS_HWM_KB=$(awk '/^VmHWM/ { print $2 }' "/proc/$RSS_PID/status")
stop_server "$RSS_PID"
RSS_MIB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')
RSS_LIMIT_MIB=$(awk -v m="$RSS_MEMORY_MIB" 'BEGIN { printf "%.1f", 1.15 * m + 64 }')
echo "  VmRSS: $RSS_MIB MiB after the fill (peak VmHWM $(awk -v k="$RSS_HWM_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB; $(awk -v k="$RSS_START_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB at start)"

# --- summary -----------------------------------------------------------------------------
if [[ $HAVE_REDIS == 1 ]]; then R=$(med redis ops_per_s); else R=0; fi

echo
echo "== summary: medians of $REPEATS rotating runs; ratio = ringcached / baseline"
echo "   floor = ringcache_empty_server --sync-services (ringcached's gRPC thread layout,"
echo "   fixed answers); bare floor = the same without health/reflection"
load
fmtnum() { awk -v v="$1" 'BEGIN { if (v >= 100) printf "%.0f", v; else printf "%.2f", v }'; }
tabline() { printf '%-60s %11s %11s %6s %-7s %s\n' "$@"; }
tabline "measure (baseline)" "ringcached" "baseline" "ratio" "target" "verdict"
row() {  # NAME RC BASE TARGET_OP TARGET
  local r; r=$(ratio "$2" "$3")
  local v="info"
  [[ -n "$4" ]] && v=$(verdict "$r" "$4" "$5")
  tabline "$1" "$(fmtnum "$2")" "$(fmtnum "$3")" "$r" "$4$5" "$v"
  if [[ $v == FAIL && $STRICT == 1 ]]; then FAILED=1; fi
}
row "unary Get ops/s, 64 in flight (floor)" "$(med unary64.rc ops_per_s)" "$(med unary64.floor ops_per_s)" ">=" 0.9
row "unary Get ops/s, 64 in flight (bare floor)" "$(med unary64.rc ops_per_s)" "$(med unary64.bare ops_per_s)" "" ""
row "unary Get p50 us per rpc, 1 in flight (floor)" "$(med unary1.rc p50_us)" "$(med unary1.floor p50_us)" "<=" 1.2
row "unary Get p50 us per rpc, 1 in flight (bare floor)" "$(med unary1.rc p50_us)" "$(med unary1.bare p50_us)" "" ""
if [[ $HAVE_REDIS == 1 ]]; then
  row "Pipeline Get ops/s, $P/msg x $CONNS streams (redis -P$P -c$CONNS)" "$(med p16pipe.rc ops_per_s)" "$R" ">=" 0.8
  row "MultiGet ops/s, $P keys x $CONNS calls (redis -P$P -c$CONNS)" "$(med p16batch.rc ops_per_s)" "$R" ">=" 0.8
fi
row "Pipeline Get ops/s (floor's Pipeline)" "$(med p16pipe.rc ops_per_s)" "$(med p16pipe.floor ops_per_s)" "" ""
row "MultiGet ops/s (floor's MultiGet)" "$(med p16batch.rc ops_per_s)" "$(med p16batch.floor ops_per_s)" "" ""
row "server CPU us/op, unary Get 64 in flight (floor)" "$(med unary64.rc srv_cpu_us_per_op)" \
  "$(med unary64.floor srv_cpu_us_per_op)" "" ""
row "server CPU us/op, unary Get 64 in flight (bare floor)" "$(med unary64.rc srv_cpu_us_per_op)" \
  "$(med unary64.bare srv_cpu_us_per_op)" "" ""
row "server CPU us/op, Pipeline Get (floor)" "$(med p16pipe.rc srv_cpu_us_per_op)" \
  "$(med p16pipe.floor srv_cpu_us_per_op)" "" ""
row "server CPU us/op, MultiGet (floor)" "$(med p16batch.rc srv_cpu_us_per_op)" \
  "$(med p16batch.floor srv_cpu_us_per_op)" "" ""
if [[ $HAVE_REDIS == 1 ]]; then
  row "server CPU us/op, Pipeline Get (redis GET -P$P)" "$(med p16pipe.rc srv_cpu_us_per_op)" \
    "$(med redis srv_cpu_us_per_op)" "" ""
  row "client CPU us/op, loadgen Pipeline (redis-benchmark)" \
    "$(med p16pipe.rc client_cpu_us_per_op)" "$(med redis client_cpu_us_per_op)" "" ""
fi
RSS_V=$(awk -v r="$RSS_MIB" -v l="$RSS_LIMIT_MIB" 'BEGIN { print (r <= l) ? "PASS" : "FAIL" }')
tabline "VmRSS MiB at --memory ${RSS_MEMORY_MIB}MiB, full (limit 1.15x+64MiB)" "$RSS_MIB" "$RSS_LIMIT_MIB" \
  "$(ratio "$RSS_MIB" "$RSS_MEMORY_MIB")" "<=limit" "$RSS_V"
if [[ $RSS_V == FAIL && $STRICT == 1 ]]; then FAILED=1; fi
echo "(RSS ratio = RSS / budget; its baseline column is the limit. Latency is per rpc; ops/s"
echo " count operations, i.e. keys, not messages. Redis: \`${REDIS_CMD[*]}\` after"
echo " \`redis-benchmark -t set -P $P -c $CONNS -d $VALUE -r $KEYS -n $REDIS_FILL_N\`.)"

if [[ $FAILED == 1 ]]; then
  echo "run_daemon_bench.sh: FAILED (see above)"
  exit 1
fi
echo "run_daemon_bench.sh: ok"
