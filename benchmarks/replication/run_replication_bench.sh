#!/usr/bin/env bash
# run_replication_bench.sh: async replication measured on real ringcached nodes, in one run.
#
#   1. Replication lag at a fixed 10k Sets/s of 32 B values (2 nodes, replication factor 2,
#      open loop on the keys n1 is the primary of). The lag of a write is the time from the
#      primary's apply to the replica's ack reaching the primary, observed per write by the
#      node (histogram ringcache_replication_ack_latency_seconds, scraped before and after
#      the run; p50/p99 interpolated within buckets, as Prometheus' histogram_quantile does).
#                                                                   target p99 <= 10 ms
#      Shown too: the Set latency the client sees at the same rate with write concern 0
#      (reply after the local apply) and 1 (reply after the replica's ack).
#   2. Set throughput of the primary, closed loop, 64 Sets in flight, 32 B values:
#      replication factor 2 vs 1 (two 2-node clusters side by side; every Set goes to keys
#      the target node is the primary of, so nothing is forwarded).   target >= 0.7x
#   3. With --tls: the lag of (1) on a plaintext pair and on a pair with mutual TLS and node
#      identity (--tls-client-certs require --tls-node-identity, a cluster secret, test
#      certificates from tests/integration/make_test_certs.sh), side by side: --repeats
#      rounds, alternating which pair runs first; per pair p50/p99 lag, client Set p99 and
#      the nodes' CPU per Set, and the TLS/plaintext ratio of the p99 lag from each round's
#      adjacent pair (median, min .. max).
#
# Each throughput round runs both clusters, alternating which goes first; the medians of
# --repeats rounds are compared. Nothing is pinned: client and nodes share the machine's
# cores, so the ratio matters more than the absolute figures (the nodes' CPU time per Set
# is printed as well). Targets print PASS/FAIL; they fail the script only with --strict.
# The script fails (1) when a node cannot start or a run reports errors; it skips (77)
# when ringcached is not built.
#
# Usage: run_replication_bench.sh [--quick] [--strict] [--tls] [--build-dir DIR]
#          [--repeats N] [--duration-s S] [--bench BIN] [--ringcached BIN]
set -euo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
STRICT=0
TLS=0
BUILD_DIR=""
BENCH=""
RINGCACHED=""
REPEATS=""
DURATION=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --strict) STRICT=1 ;;
    --tls) TLS=1 ;;
    --build-dir) BUILD_DIR="$2"; shift ;;
    --bench) BENCH="$2"; shift ;;
    --ringcached) RINGCACHED="$2"; shift ;;
    --repeats) REPEATS="$2"; shift ;;
    --duration-s) DURATION="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_replication_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ -n "$BUILD_DIR" ]]; then
  : "${BENCH:=$BUILD_DIR/benchmarks/replication/ringcache_repl_bench}"
  : "${RINGCACHED:=$BUILD_DIR/daemon/node/ringcached}"
fi
if [[ -z "$BENCH" || ! -x "$BENCH" ]]; then
  echo "run_replication_bench.sh: missing binary '$BENCH' (give --build-dir or --bench)" >&2
  exit 2
fi
if [[ -z "$RINGCACHED" || ! -x "$RINGCACHED" ]]; then
  echo "run_replication_bench.sh: SKIP: ringcached not found ('$RINGCACHED')"
  exit 77
fi

# --- settings -------------------------------------------------------------------------
RATE=10000        # Sets per second of the lag measurement
VALUE=32          # value bytes
INFLIGHT=64       # Sets in flight in the throughput measurement
KEYS=100000       # distinct keys (all primaried by the target node)
if [[ $QUICK == 1 ]]; then
  : "${REPEATS:=1}"; : "${DURATION:=1}"; WARMUP=0.3
else
  : "${REPEATS:=5}"; : "${DURATION:=5}"; WARMUP=1
fi
RUN_TIMEOUT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 30 }')

WORK=$(mktemp -d /tmp/ringcache-repl-bench.XXXXXX)
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
fail() { echo "FAILED: $*"; FAILED=1; }
load() { echo "load: $(uptime | sed 's/.*load average/load average/')"; }

# start_node NAME ARGS... : starts ringcached NAME in the background and waits (20 s) for
# its ready file (written once it holds a view); sets NODE_PID, NODE_ADDR, NODE_METRICS.
start_node() {
  local name="$1"; shift
  local ready="$WORK/$name.ready"
  "$RINGCACHED" --node-id "$name" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --ready-file "$ready" --memory 1GiB --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  for _ in $(seq 200); do
    [[ -s "$ready" ]] && break
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  NODE_ADDR=$(sed -n 's/^grpc=//p' "$ready" 2>/dev/null || true)
  NODE_METRICS=$(sed -n 's/^metrics=//p' "$ready" 2>/dev/null || true)
  if [[ -z "$NODE_ADDR" ]]; then
    echo "run_replication_bench.sh: $name did not become ready within 20 s; its log:" >&2
    tail -20 "$WORK/$name.log" >&2
    exit 1
  fi
}

# start_cluster PREFIX RF [ARGS...] : two nodes PREFIX1 (bootstraps) and PREFIX2 (joins),
# with ARGS ("{id}" in one stands for the node's name); sets C_PIDS, C_ADDR (PREFIX1's gRPC
# address) and C_METRICS (PREFIX1's metrics address).
start_cluster() {
  local prefix="$1" rf="$2"; shift 2
  start_node "${prefix}1" --replication-factor "$rf" "${@//\{id\}/${prefix}1}"
  local pid1=$NODE_PID addr1=$NODE_ADDR metrics1=$NODE_METRICS
  start_node "${prefix}2" --replication-factor "$rf" --seeds "$addr1" "${@//\{id\}/${prefix}2}"
  C_PIDS="$pid1 $NODE_PID" C_ADDR=$addr1 C_METRICS=$metrics1
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo $t; }

# bench OUT PIDS ARGS... : one ringcache_repl_bench run; appends its RESULT line plus the
# CPU time the PIDS used per Set (srv_cpu_us_per_op, over the whole run) to OUT.results.
bench() {
  local out="$1" pids="$2"; shift 2
  local log="$WORK/run.log" rc=0 t0 t1
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pids)
  timeout "$RUN_TIMEOUT" "$BENCH" --duration-s "$DURATION" --warmup-s "$WARMUP" \
    --value-size "$VALUE" --keys "$KEYS" "$@" >"$log" 2>&1 || rc=$?
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids)
  if [[ $rc != 0 ]]; then
    fail "ringcache_repl_bench $* (exit $rc):"
    sed 's/^/    /' "$log"
  fi
  local result ops
  result=$(grep '^RESULT' "$log" || true)
  ops=$(echo "$result" | sed -n 's/.* ops_per_s=\([0-9]*\).*/\1/p')
  local total_ops
  total_ops=$(awk -v o="${ops:-0}" -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", o * (d + w) }')
  result="$result srv_cpu_us_per_op=$(awk -v t=$((t1 - t0)) -v n="$total_ops" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print 0 }')"
  echo "$result" >>"$WORK/$out.results"
  printf '  %-12s %s\n' "$out" "$(grep -v '^RESULT' "$log" | head -1)"
}

field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$WORK/$1.results"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { field "$1" "$2" | median; }

# scrape_lag METRICS_ADDR OUT : the ack-latency histogram buckets of the node, "le count"
# per line (cumulative, summed over replicas).
scrape_lag() {
  curl -s --max-time 5 "http://$1/metrics" |
    sed -n 's/^ringcache_replication_ack_latency_seconds_bucket{.*le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p' |
    awk '{ c[$1] += $2; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
         END { for (i = 1; i <= n; i++) print order[i], c[order[i]] }' >"$2"
}

# lag_quantile BEFORE AFTER Q : the Q-quantile in ms of the observations between the two
# scrapes, linearly interpolated within its bucket; "n/a" without observations.
lag_quantile() {
  paste -d' ' "$1" "$2" | awk -v q="$3" '
    { le[NR] = $1; c[NR] = $4 - $2 }
    END {
      total = c[NR]; if (total <= 0) { print "n/a"; exit }
      rank = q * total; prev_le = 0; prev_c = 0
      for (i = 1; i <= NR; i++) {
        if (c[i] >= rank) {
          if (le[i] == "+Inf") { printf "> %.3f", prev_le * 1000; exit }
          frac = (c[i] > prev_c) ? (rank - prev_c) / (c[i] - prev_c) : 1
          printf "%.3f", (prev_le + (le[i] - prev_le) * frac) * 1000; exit
        }
        prev_le = le[i]; prev_c = c[i]
      }
    }'
}
lag_count() { paste -d' ' "$1" "$2" | awk 'END { print $4 - $2 }'; }

echo "== ringcached replication benchmark ($( [[ $QUICK == 1 ]] && echo quick || echo full ) run)"
echo "machine: $(nproc) cores, $(uname -r); repeats: $REPEATS x ${DURATION}s (+${WARMUP}s warm-up)"
echo "binaries: $RINGCACHED, $BENCH"
load

start_cluster a 2
RF2_PIDS=$C_PIDS RF2_ADDR=$C_ADDR RF2_METRICS=$C_METRICS
start_cluster b 1
RF1_PIDS=$C_PIDS RF1_ADDR=$C_ADDR
echo "RF 2 cluster: a1 $RF2_ADDR (pids $RF2_PIDS); RF 1 cluster: b1 $RF1_ADDR (pids $RF1_PIDS)"

# --- 1. lag at a fixed rate --------------------------------------------------------------
echo
echo "-- 1. replication lag at $RATE Sets/s of $VALUE B values, open loop (a1 -> a2)"
load
scrape_lag "$RF2_METRICS" "$WORK/lag.before"
bench lag.wc0 "$RF2_PIDS" --addr "$RF2_ADDR" --mode rate --rate "$RATE" --inflight 1000
scrape_lag "$RF2_METRICS" "$WORK/lag.after"
LAG_N=$(lag_count "$WORK/lag.before" "$WORK/lag.after")
LAG_P50=$(lag_quantile "$WORK/lag.before" "$WORK/lag.after" 0.5)
LAG_P99=$(lag_quantile "$WORK/lag.before" "$WORK/lag.after" 0.99)
echo "  lag (apply on a1 -> ack from a2), $LAG_N writes: p50 $LAG_P50 ms, p99 $LAG_P99 ms"
if [[ "${LAG_N:-0}" -le 0 ]]; then fail "no replication lag observed (is the link up?)"; fi
bench lag.wc1 "$RF2_PIDS" --addr "$RF2_ADDR" --mode rate --rate "$RATE" --inflight 1000 \
  --write-concern 1

# --- 2. throughput, RF 2 vs RF 1 -----------------------------------------------------------
echo
echo "-- 2. Set ops/s of the primary, $INFLIGHT in flight, $VALUE B values: RF 2 vs RF 1"
load
for ((i = 0; i < REPEATS; i++)); do
  if ((i % 2 == 0)); then order="rf2 rf1"; else order="rf1 rf2"; fi
  for who in $order; do
    case $who in
      rf2) bench tput.rf2 "$RF2_PIDS" --addr "$RF2_ADDR" --mode max --inflight "$INFLIGHT" ;;
      rf1) bench tput.rf1 "$RF1_PIDS" --addr "$RF1_ADDR" --mode max --inflight "$INFLIGHT" ;;
    esac
  done
done
LINK=$(curl -s --max-time 5 "http://$RF2_METRICS/metrics" | grep -E '^ringcache_replication_(lag_ops|full_syncs_total|resumes_total)' | tr '\n' ' ')
echo "  a1's link after the runs: $LINK"

# --- 3. lag with mutual TLS and node identity -------------------------------------------
if [[ $TLS == 1 ]]; then
  echo
  echo "-- 3. replication lag at $RATE Sets/s: plaintext (a1 -> a2) vs mutual TLS (n1 -> n2)"
  CERTS="$WORK/certs"
  bash "$(dirname "$0")/../../tests/integration/make_test_certs.sh" "$CERTS"
  (umask 077; echo "replication-bench-cluster-secret" >"$WORK/secret")
  start_cluster n 2 --tls-cert-file "$CERTS/{id}.pem" --tls-key-file "$CERTS/{id}.key" \
    --tls-ca-file "$CERTS/ca.pem" --tls-client-certs require --tls-node-identity \
    --cluster-secret-file "$WORK/secret"
  TLS_PIDS=$C_PIDS TLS_ADDR=$C_ADDR TLS_METRICS=$C_METRICS
  TLS_CLIENT=(--tls-ca-file "$CERTS/ca.pem" --tls-cert-file "$CERTS/client.pem"
    --tls-key-file "$CERTS/client.key")
  load
  # lag_round NAME METRICS PIDS ADDR [CLIENT FLAGS...] : one lag run; appends "p50 p99" to
  # NAME.lag.
  lag_round() {
    local name="$1" metrics="$2" pids="$3" addr="$4"; shift 4
    scrape_lag "$metrics" "$WORK/$name.before"
    bench "$name" "$pids" --addr "$addr" --mode rate --rate "$RATE" --inflight 1000 "$@"
    scrape_lag "$metrics" "$WORK/$name.after"
    echo "$(lag_quantile "$WORK/$name.before" "$WORK/$name.after" 0.5)" \
      "$(lag_quantile "$WORK/$name.before" "$WORK/$name.after" 0.99)" >>"$WORK/$name.lag"
  }
  for ((i = 0; i < REPEATS; i++)); do
    if ((i % 2 == 0)); then order="plain tls"; else order="tls plain"; fi
    for who in $order; do
      case $who in
        plain) lag_round lag.plain "$RF2_METRICS" "$RF2_PIDS" "$RF2_ADDR" ;;
        tls) lag_round lag.tls "$TLS_METRICS" "$TLS_PIDS" "$TLS_ADDR" "${TLS_CLIENT[@]}" ;;
      esac
    done
  done
  paste -d' ' "$WORK/lag.plain.lag" "$WORK/lag.tls.lag" >"$WORK/lag.pairs"
  echo "  per round, p50/p99 lag ms: plaintext | TLS"
  awk '{ printf "    %s/%s | %s/%s\n", $1, $2, $3, $4 }' "$WORK/lag.pairs"
  TLS_RATIOS=$(awk '$2 + 0 > 0 { printf "%.2f\n", $4 / $2 }' "$WORK/lag.pairs" | sort -g)
  TLS_RATIO=$(echo "$TLS_RATIOS" | median)
  TLS_SPREAD="$(echo "$TLS_RATIOS" | head -1) .. $(echo "$TLS_RATIOS" | tail -1)"
fi

# --- summary -------------------------------------------------------------------------------
echo
echo "== summary (medians of $REPEATS rounds)"
load
tabline() { printf '%-58s %12s %12s %-8s %s\n' "$@"; }
verdict() {  # VALUE OP TARGET
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "n/a" || v ~ /^>/) { print (op == "<=" ? "FAIL" : "n/a"); exit }
    ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "PASS" : "FAIL" }'
}
tabline "measure" "value" "target" "verdict" ""
V=$(verdict "$LAG_P99" "<=" 10)
tabline "replication lag p50 ms at $RATE Sets/s" "$LAG_P50" "" "info"
tabline "replication lag p99 ms at $RATE Sets/s" "$LAG_P99" "<= 10" "$V"
[[ $V == FAIL && $STRICT == 1 ]] && FAILED=1
tabline "client Set p50/p99 us at $RATE/s, write concern 0" \
  "$(med lag.wc0 p50_us)/$(med lag.wc0 p99_us)" "" "info"
tabline "client Set p50/p99 us at $RATE/s, write concern 1" \
  "$(med lag.wc1 p50_us)/$(med lag.wc1 p99_us)" "" "info"
R2=$(med tput.rf2 ops_per_s) R1=$(med tput.rf1 ops_per_s)
RATIO=$(awk -v a="$R2" -v b="$R1" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
V=$(verdict "$RATIO" ">=" 0.7)
tabline "Set ops/s RF 2 / RF 1 ($R2 / $R1)" "$RATIO" ">= 0.7" "$V"
[[ $V == FAIL && $STRICT == 1 ]] && FAILED=1
tabline "nodes' CPU us per Set, RF 2 vs RF 1 (both nodes)" \
  "$(med tput.rf2 srv_cpu_us_per_op) vs $(med tput.rf1 srv_cpu_us_per_op)" "" "info"
if [[ $TLS == 1 ]]; then
  mcol() { awk -v c="$2" '{ print $c }' "$WORK/$1.lag" | median; }
  tabline "lag p50/p99 ms, plaintext pair" "$(mcol lag.plain 1)/$(mcol lag.plain 2)" "" "info"
  tabline "lag p50/p99 ms, mutual TLS + node identity pair" \
    "$(mcol lag.tls 1)/$(mcol lag.tls 2)" "" "info"
  tabline "lag p99 TLS / plaintext, adjacent pairs (min .. max)" \
    "$TLS_RATIO ($TLS_SPREAD)" "" "info"
  tabline "client Set p99 us, plaintext vs TLS" \
    "$(med lag.plain p99_us) vs $(med lag.tls p99_us)" "" "info"
  tabline "nodes' CPU us per Set, plaintext vs TLS (both nodes)" \
    "$(med lag.plain srv_cpu_us_per_op) vs $(med lag.tls srv_cpu_us_per_op)" "" "info"
fi
echo "(lag = per write, from the primary's apply to the replica's ack arriving at the primary;"
echo " client latencies are from ringcache_repl_bench, open loop at the fixed rate)"

if [[ $FAILED == 1 ]]; then
  echo "run_replication_bench.sh: FAILED (see above)"
  exit 1
fi
echo "run_replication_bench.sh: ok"
