#!/usr/bin/env bash
# run_flood_bench.sh: a node's resident memory under a flood of large writes, against the
# bound the issue "Trust boundaries and bounded resources" sets: RSS <= 1.25 x --memory +
# 64 MiB, sampled every 100 ms.
#
# One ringcached (--memory, default 64MiB) and 4 ringcache_loadgen clients at once, each
# writing values of 1 KiB to 1 MiB (--value-size 1024 --value-size-max 1048576) over 4000
# keys (about 2 GiB of distinct data, so the node evicts all the time), 64 operations in
# flight each: two on unary Sets, one on MultiSet batches of 4, one on Pipeline streams (4
# per message: messages stay under the node's 8 MiB request limit).
# Printed: the peak and final RSS against the bound, each client's ops/s and errors
# (RESOURCE_EXHAUSTED counts as refused, not failed), and the node's CPU time per write.
# Nothing is asserted unless --strict (exit 1 when the peak is over the bound).
#
# Usage: run_flood_bench.sh --ringcached BIN --loadgen BIN [--memory SIZE] [--duration-s S]
#          [--node-args "FLAGS"] [--strict]
# --node-args: more ringcached flags, e.g. "--max-streams-per-connection 16
# --grow-receive-windows=false" (docs/operations.md, "Memory").
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

RINGCACHED=""
LOADGEN=""
MEMORY="64MiB"
DURATION=60
STRICT=0
NODE_ARGS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ringcached) RINGCACHED="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --memory) MEMORY="$2"; shift ;;
    --duration-s) DURATION="$2"; shift ;;
    --node-args) NODE_ARGS="$2"; shift ;;
    --strict) STRICT=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_flood_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for bin in "$RINGCACHED" "$LOADGEN"; do
  if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "run_flood_bench.sh: give --ringcached and --loadgen (executables)" >&2
    exit 2
  fi
done
case "$MEMORY" in
  *GiB) MEM_MIB=$(( ${MEMORY%GiB} * 1024 )) ;;
  *MiB) MEM_MIB=${MEMORY%MiB} ;;
  *) echo "run_flood_bench.sh: --memory takes NMiB or NGiB" >&2; exit 2 ;;
esac
BOUND_KIB=$(( (MEM_MIB * 5 / 4 + 64) * 1024 ))

WORK=$(mktemp -d /tmp/ringcache-flood.XXXXXX)
NODE_PID=""
cleanup() {
  [[ -n "$NODE_PID" ]] && kill -TERM "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

"$RINGCACHED" --node-id flood --listen 127.0.0.1:0 --metrics-listen "" --memory "$MEMORY" \
  --ready-file "$WORK/ready" --log-level warn $NODE_ARGS >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 200); do [[ -s "$WORK/ready" ]] && break; sleep 0.1; done
ADDR=$(sed -n 's/^grpc=//p' "$WORK/ready")
[[ -n "$ADDR" ]] || { echo "ringcached did not start:"; cat "$WORK/node.log"; exit 1; }

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$NODE_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NODE_PID/stat"; }
echo "ringcached --memory $MEMORY $NODE_ARGS at $ADDR; bound $((BOUND_KIB / 1024)) MiB; ${DURATION}s flood"
echo "RSS before: $(( $(rss_kib) / 1024 )) MiB"

CPU0=$(cpu_ticks)
i=0
for mode in unary unary batch pipeline; do
  i=$((i + 1))
  "$LOADGEN" --addr "$ADDR" --mode "$mode" --ops set --value-size 1024 \
    --value-size-max 1048576 --keys 4000 --inflight 64 --duration-s "$DURATION" \
    --batch 4 --warmup-s 0 --seed "$i" >"$WORK/client$i.$mode.log" 2>&1 &
done
PEAK=0
END=$(( $(date +%s) + DURATION + 2 ))
while [[ $(date +%s) -lt $END ]] && jobs -r | grep -q .; do
  r=$(rss_kib)
  (( r > PEAK )) && PEAK=$r
  sleep 0.1
done
wait $(jobs -p | grep -v "^$NODE_PID$") 2>/dev/null || true
CPU1=$(cpu_ticks)
AFTER=$(rss_kib)
sleep 2
IDLE=$(rss_kib)

OPS=0
for log in "$WORK"/client*.log; do
  line=$(grep '^RESULT' "$log" || true)
  ops=$(echo "$line" | sed -n 's/.* ops_per_s=\([0-9.]*\).*/\1/p')
  errs=$(grep -m1 'errors:' "$log" | sed 's/^ *//' || true)
  printf '  %-22s %8s ops/s  %s\n' "$(basename "$log" .log)" "${ops:-?}" "${errs:-}"
  OPS=$(awk -v a="$OPS" -v b="${ops:-0}" 'BEGIN { print a + b }')
done
HZ=$(getconf CLK_TCK)
echo "node CPU per write: $(awk -v t=$((CPU1 - CPU0)) -v hz="$HZ" -v o="$OPS" -v d="$DURATION" \
  'BEGIN { if (o > 0) printf "%.1f us", t * 1e6 / hz / (o * d); else print "n/a" }')"
echo "RSS peak $((PEAK / 1024)) MiB (bound $((BOUND_KIB / 1024)) MiB: $(awk -v p="$PEAK" \
  -v b="$BOUND_KIB" 'BEGIN { printf "%.2fx", p / b }') of it); at the end $((AFTER / 1024)) MiB," \
  "2 s later $((IDLE / 1024)) MiB"
if (( PEAK > BOUND_KIB )); then
  echo "run_flood_bench.sh: OVER the bound"
  [[ $STRICT == 1 ]] && exit 1
else
  echo "run_flood_bench.sh: within the bound"
fi
exit 0
