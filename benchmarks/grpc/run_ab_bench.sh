#!/usr/bin/env bash
# run_ab_bench.sh: two ringcached builds side by side in one run — for "is this change
# slower?". Both servers run at once (same flags, same prefilled keys); every round runs
# each workload against A then B or B then A (alternating), with the loadgen settings of
# run_daemon_bench.sh:
#   unary64   unary Gets, 64 in flight
#   unary1    unary Gets, 1 in flight (p50 latency)
#   pipeline  Gets, 16 per Pipeline message, 50 streams
#   multiget  MultiGet of 16 keys, 50 calls outstanding
# Printed per workload: each build's median ops/s (and p50 for unary1) and server CPU per
# operation, and the ratio B/A of each adjacent pair with the median and the spread (min ..
# max) over the rounds. Nothing is asserted: a ratio whose spread straddles 1.0 is noise.
# With --nodes N (default 1) each build runs as an N-node cluster (replication factor 2)
# and the load goes to its first node, so that about (N-1)/N of the keys are forwarded
# (unary calls one by one, Pipeline and MultiGet in batches per owner); the CPU per
# operation is then the sum over the build's nodes.
#
# --a-args/--b-args add ringcached flags to one build, --a-client/--b-client loadgen flags
# to its runs: the same binary twice compares settings (run_tls_bench.sh: TLS on and off).
#
# Usage: run_ab_bench.sh --a RINGCACHED --b RINGCACHED --loadgen BIN [--rounds N]
#          [--duration-s S] [--nodes N] [--quick] [--a-args "FLAGS"] [--b-args "FLAGS"]
#          [--a-client "FLAGS"] [--b-client "FLAGS"]
set -euo pipefail

A="" B="" LOADGEN="" ROUNDS=5 DURATION=5 WARMUP=1 KEYS=100000 NODES=1
A_ARGS="" B_ARGS="" A_CLIENT="" B_CLIENT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --a) A="$2"; shift ;;
    --b) B="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --nodes) NODES="$2"; shift ;;
    --duration-s) DURATION="$2"; shift ;;
    --a-args) A_ARGS="$2"; shift ;;
    --b-args) B_ARGS="$2"; shift ;;
    --a-client) A_CLIENT="$2"; shift ;;
    --b-client) B_CLIENT="$2"; shift ;;
    --quick) ROUNDS=1 DURATION=0.5 WARMUP=0.2 KEYS=20000 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_ab_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for bin in "$A" "$B" "$LOADGEN"; do
  [[ -n "$bin" && -x "$bin" ]] || { echo "run_ab_bench.sh: missing binary '$bin'" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/ringcache-ab-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME BIN: starts a ringcached (or a cluster of NODES); sets PID_<NAME> (the nodes'
# pids) and ADDR_<NAME> (the first node's address).
start() {
  local name="$1" bin="$2" n addr first="" pids=() extra client
  local extra_var="${name}_ARGS" client_var="${name}_CLIENT"
  read -r -a extra <<<"${!extra_var}"
  read -r -a client <<<"${!client_var}"
  for ((n = 1; n <= NODES; n++)); do
    local cluster_args=()
    if ((NODES > 1)); then
      cluster_args=(--node-id "n$n" --replication-factor 2)
      [[ -n "$first" ]] && cluster_args+=(--seeds "$first")
    fi
    "$bin" --listen 127.0.0.1:0 --metrics-listen "" --ready-file "$WORK/$name.$n.ready" \
      --memory 1GiB --threads "$(nproc)" --log-level warn "${cluster_args[@]}" "${extra[@]}" \
      >"$WORK/$name.$n.log" 2>&1 &
    PIDS+=("$!")
    pids+=("$!")
    for _ in $(seq 300); do [[ -s "$WORK/$name.$n.ready" ]] && break; sleep 0.1; done
    addr=$(sed -n 's/^grpc=//p' "$WORK/$name.$n.ready" 2>/dev/null || true)
    [[ -n "$addr" ]] || { echo "$name node $n did not start:" >&2; cat "$WORK/$name.$n.log" >&2; exit 1; }
    [[ -n "$first" ]] || first="$addr"
  done
  printf -v "PID_$name" '%s' "${pids[*]}"
  printf -v "ADDR_$name" '%s' "$first"
  # A joiner serves once its transition completes: retry the prefill until it goes through.
  for _ in $(seq 50); do
    "$LOADGEN" --addr "$first" --prefill --keys "$KEYS" --value-size 32 --mode unary \
      --inflight 1 --duration-s 0.01 --warmup-s 0 "${client[@]}" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "prefill of $name failed" >&2
  exit 1
}
start A "$A"
start B "$B"
echo "A: $A (pid $PID_A)"
echo "B: $B (pid $PID_B)"
echo "$ROUNDS rounds x ${DURATION}s per workload and build, alternating; $NODES node(s) per build; $(nproc) cores; $(uptime | sed 's/.*load average/load average/')"

CLK_TCK=$(getconf CLK_TCK)
# The CPU ticks (user + system) of the pids given, summed.
cpu_ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    sum=$((sum + t))
  done
  echo "$sum"
}

# run WORKLOAD WHO ARGS...: one loadgen run; appends "ops p50 cpu_us" to $WORK/WORKLOAD.WHO.
run() {
  local workload="$1" who="$2"; shift 2
  local pid_var="PID_$who" addr_var="ADDR_$who"
  local pids t0 t1 out client client_var="${who}_CLIENT"
  read -r -a pids <<<"${!pid_var}"
  read -r -a client <<<"${!client_var}"
  t0=$(cpu_ticks "${pids[@]}")
  out=$("$LOADGEN" --addr "${!addr_var}" --keys "$KEYS" --value-size 32 --ops get --verify \
        --duration-s "$DURATION" --warmup-s "$WARMUP" "$@" "${client[@]}" 2>&1 | grep '^RESULT' || true)
  t1=$(cpu_ticks "${pids[@]}")
  [[ -n "$out" ]] || { echo "loadgen failed: $workload on $who" >&2; exit 1; }
  if ! grep -q ' misses=0 wrong=0 errors=0' <<<"$out"; then
    echo "loadgen reported misses, wrong values or errors: $workload on $who: $out" >&2
    exit 1
  fi
  local ops p50 all
  ops=$(sed -n 's/.* ops_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
  p50=$(sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p' <<<"$out")
  all=$(sed -n 's/.* all_ops=\([0-9]*\).*/\1/p' <<<"$out")
  awk -v o="$ops" -v p="${p50:-0}" -v t=$((t1 - t0)) -v n="${all:-0}" -v hz="$CLK_TCK" \
    'BEGIN { printf "%s %s %.3f\n", o, p, (n > 0 ? t * 1e6 / hz / n : 0) }' >>"$WORK/$workload.$who"
}

declare -A ARGS=(
  [unary64]="--mode unary --inflight 64"
  [unary1]="--mode unary --inflight 1"
  [pipeline]="--mode pipeline --batch 16 --streams 50 --inflight 800 --channels 8 --threads 2"
  [multiget]="--mode batch --batch 16 --inflight 800 --channels 8 --threads 2"
)
WORKLOADS=(unary64 unary1 pipeline multiget)
for ((r = 0; r < ROUNDS; r++)); do
  for w in "${WORKLOADS[@]}"; do
    read -r -a args <<<"${ARGS[$w]}"
    if ((r % 2 == 0)); then run "$w" A "${args[@]}"; run "$w" B "${args[@]}"
    else run "$w" B "${args[@]}"; run "$w" A "${args[@]}"; fi
  done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
printf '%-9s %12s %12s %9s %9s %10s %10s  %s\n' workload "A ops/s" "B ops/s" "A cpu/op" "B cpu/op" "A p50 us" "B p50 us" "B/A ops/s: median (min .. max)"
for w in "${WORKLOADS[@]}"; do
  ratios=$(paste -d' ' "$WORK/$w.A" "$WORK/$w.B" | awk '{ if ($1 > 0) printf "%.3f\n", $4 / $1 }')
  printf '%-9s %12.0f %12.0f %9.2f %9.2f %10.0f %10.0f  %s (%s .. %s)\n' "$w" \
    "$(cut -d' ' -f1 "$WORK/$w.A" | median)" "$(cut -d' ' -f1 "$WORK/$w.B" | median)" \
    "$(cut -d' ' -f3 "$WORK/$w.A" | median)" "$(cut -d' ' -f3 "$WORK/$w.B" | median)" \
    "$(cut -d' ' -f2 "$WORK/$w.A" | median)" "$(cut -d' ' -f2 "$WORK/$w.B" | median)" \
    "$(median <<<"$ratios")" "$(sort -g <<<"$ratios" | head -1)" "$(sort -g <<<"$ratios" | tail -1)"
done
