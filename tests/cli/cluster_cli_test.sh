#!/usr/bin/env bash
# ringcache-cli against a real 3-node cluster on 127.0.0.1 (n1 bootstraps, n2 and n3 join
# through it; replication factor 2): any node serves any key, `cluster status` (with each
# node's state), write concern (--wc) and read preference (--read any), a 4th node joining
# and `cluster leave` of n2 (its keys move, the process exits 0), and a member that dies
# (kill -9: declared failed, its keys served by their replicas).
#
#   tests/cli/cluster_cli_test.sh <build>/daemon/node/ringcached <build>/daemon/cli/ringcache-cli
set -euo pipefail

ringcached=${1:?usage: cluster_cli_test.sh RINGCACHED RINGCACHE_CLI}
cli=${2:?usage: cluster_cli_test.sh RINGCACHED RINGCACHE_CLI}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/node_lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/ringcache-cluster-cli-test.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
out=$work/out
err=$work/err
passed=0

fail() {
  echo "FAIL: $*" >&2
  echo "--- stdout of the last command:" >&2
  head -c 3000 "$out" >&2 || true
  echo "--- stderr of the last command:" >&2
  head -c 2000 "$err" >&2 || true
  local n
  for n in 1 2 3 4; do
    [[ -f $work/n$n/ringcached.log ]] || continue
    echo "--- n$n log (tail):" >&2
    tail -n 15 "$work/n$n/ringcached.log" >&2 || true
  done
  echo "$passed passed, 1 failed"
  exit 1
}

ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}

expect() {
  local want=$1
  shift
  local got=0
  "$@" >"$out" 2>"$err" || got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, want $want"
}
out_is() {
  printf '%s' "$1" >"$work/want"
  cmp -s "$work/want" "$out" || fail "stdout is '$(cat "$out")', want '$1'"
}
out_matches() { grep -Eq -- "$1" "$out" || fail "stdout does not match /$1/"; }
err_has() { grep -Fq -- "$1" "$err" || fail "stderr does not contain '$1'"; }

# Three nodes; node_start keeps only the last node's variables, so save each one's.
addrs=()
for n in 1 2 3; do
  mkdir -p "$work/n$n"
  seeds=()
  ((n == 1)) || seeds=(--seeds "${addrs[0]}")
  node_start "$ringcached" "$work/n$n" --node-id "n$n" --log-level info --memory 64MiB \
    --replication-factor 2 "${seeds[@]}"
  pids+=("$NODE_PID")
  addrs+=("$NODE_ADDR")
done
echo "# ringcached n1 n2 n3 at ${addrs[*]}"

# wait_serving N ADDR...: waits (bounded, 20 s) until `cluster status` through each ADDR
# shows N members serving in the view and as nodes (a joiner serves once its ranges came).
wait_serving() {
  local want=$1 a i converged=0
  shift
  for ((i = 0; i < 200; i++)); do  # 200 x 100 ms = 20 s
    converged=1
    for a in "$@"; do
      "$cli" --addr "$a" cluster status >"$out" 2>"$err" || true
      [[ $(grep -cE '^n[0-9] +[0-9.:]+ +serving +serving ' "$out" || true) == "$want" ]] ||
        converged=0
    done
    ((converged)) && return 0
    sleep 0.1
  done
  fail "the nodes did not agree on $want serving members within 20 s"
}

# Joins are done when each node's ready file exists, but n1 and n2 learn of n3 by a push,
# and a joiner serves only once its ranges have arrived.
wait_serving 3 "${addrs[@]}"

# --- any node serves any key ---------------------------------------------------------------
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
  expect 0 "$cli" --addr "${addrs[$((k % 3))]}" set "key$k" "value$k"
done
for a in "${addrs[@]}"; do
  for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    expect 0 "$cli" --addr "$a" get "key$k"
    out_is "value$k"
  done
done
expect 0 "$cli" --addr "${addrs[2]}" mget key1 key2 nope key3
out_is $'key1\tvalue1\nkey2\tvalue2\nnope\t(not found)\nkey3\tvalue3\n'
ok "keys written through any node read back through every node (get, mget)"

# --- cluster status ------------------------------------------------------------------------
expect 0 "$cli" --addr "${addrs[1]}" cluster status
out_matches '^cluster view epoch [0-9]+ from 127\.0\.0\.1:[0-9]+: 3 members, replication factor 2, 160 vnodes per weight$'
out_matches '^ID +ADDRESS +STATE +NODE_STATE +WEIGHT +PRIMARY +OWNER +EPOCH +ITEMS +UNDER_REPL +STATUS$'
for n in 1 2 3; do
  out_matches "^n$n +${addrs[$((n - 1))]//./\\.} +serving +serving +1 +[0-9]+\\.[0-9]% +[0-9]+\\.[0-9]% +[0-9]+ +[0-9]+ +[0-9]+ +ok$"
done
out_matches '^under-replicated ranges: [0-9]+$'
if grep -q '^migration epoch' "$out"; then fail "a progress line with no transition in progress"; fi
out_matches '^FROM +TO +STATE +LAG_OPS +LAG_MS +ACKED_SEQ +LAST_SEQ +BACKLOG +RESUMES +FULL_SYNCS$'
out_matches '^n1 +n[23] +[a-z_]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ '
# Shares add up: primaries to ~100%, owners to ~200% (replication factor 2).
primary_sum=$(awk '$3 == "serving" { sub("%", "", $6); s += $6 } END { printf "%.0f", s }' "$out")
owner_sum=$(awk '$3 == "serving" { sub("%", "", $7); s += $7 } END { printf "%.0f", s }' "$out")
[[ $primary_sum == 100 ]] || fail "primary shares add up to $primary_sum%, want 100%"
[[ $owner_sum == 200 ]] || fail "owner shares add up to $owner_sum%, want 200%"
ok "cluster status: members with address, states, weight, shares (100% / 200%), epochs, links"

# --- write concern -------------------------------------------------------------------------
expect 0 "$cli" --addr "${addrs[0]}" set wc-key v --wc 1
out_matches '^[0-9]+$'
err_has "1/1 replicas acked"
expect 0 "$cli" --addr "${addrs[2]}" incr wc-counter 5 --wc 1 --wc-timeout-ms 2000
out_is $'5\n'
err_has "1/1 replicas acked"
expect 0 "$cli" --addr "${addrs[1]}" touch wc-key 60000 --wc 1
err_has "1/1 replicas acked"
expect 0 "$cli" --addr "${addrs[1]}" mset wa 1 wb 2 wc 3 --wc 1
out_matches $'^wa\t[0-9]+$'
err_has "wa: 1/1 replicas acked"
err_has "wc: 1/1 replicas acked"
expect 0 "$cli" --addr "${addrs[2]}" del wa wb --wc 1
out_is $'2\n'
err_has "wb: 1/1 replicas acked"
expect 0 "$cli" --addr "${addrs[0]}" del wc --wc 1
err_has "1/1 replicas acked"
ok "--wc 1 on set, incr, touch, mset, del prints 'k/N replicas acked' on stderr, exit 0"

expect 3 "$cli" --addr "${addrs[0]}" set wc-key v --wc 2
err_has "INVALID_ARGUMENT: write_concern 2 is over the replication factor's 1 replicas"
expect 2 "$cli" --addr "${addrs[0]}" set wc-key v --wc -1
expect 2 "$cli" --addr "${addrs[0]}" set wc-key v --wc 1 --wc-timeout-ms 70000
ok "--wc over the replication factor is INVALID_ARGUMENT (3); bad --wc values are usage errors"

# --- read preference -----------------------------------------------------------------------
for a in "${addrs[@]}"; do
  expect 0 "$cli" --addr "$a" get wc-key --read any
  out_is "v"
  expect 0 "$cli" --addr "$a" ttl wc-key --read any
  out_matches '^[0-9]+$'
  expect 0 "$cli" --addr "$a" mget wc-key key1 --read any
  out_is $'wc-key\tv\nkey1\tvalue1\n'
done
expect 0 "$cli" --addr "${addrs[0]}" get wc-key --read primary
out_is "v"
expect 2 "$cli" --addr "${addrs[0]}" get wc-key --read nearest
ok "--read any on get, ttl, mget through every node; --read must be primary or any"

# --- help ----------------------------------------------------------------------------------
expect 0 "$cli" cluster status --help
out_matches 'Usage: .*cluster status'
out_matches 'PRIMARY and OWNER'
expect 0 "$cli" set --help
out_matches '--wc'
out_matches '--wc-timeout-ms'
expect 0 "$cli" get --help
out_matches '--read'
expect 2 "$cli" cluster
expect 0 "$cli" cluster leave --help
out_matches 'Usage: .*cluster leave'
out_matches '--no-wait'
out_matches 'left the cluster'
ok "--help documents cluster status, cluster leave, --wc and --read; 'cluster' alone is a usage error"

# --- a 4th node joins, then n2 leaves --------------------------------------------------------
mkdir -p "$work/n4"
node_start "$ringcached" "$work/n4" --node-id n4 --log-level info --memory 64MiB \
  --replication-factor 2 --seeds "${addrs[0]}"
pids+=("$NODE_PID")
addrs+=("$NODE_ADDR")
wait_serving 4 "${addrs[@]}"
for a in "${addrs[3]}" "${addrs[0]}"; do
  for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    expect 0 "$cli" --addr "$a" get "key$k"
    out_is "value$k"
  done
done
ok "n4 joins: every node serving, every key still reads (through n4 too)"

expect 0 "$cli" --addr "${addrs[1]}" --timeout-ms 5000 cluster leave
out_matches '^node n2 is leaving the cluster \(epoch [0-9]+\)$'
out_matches '^node n2 left the cluster \(epoch [0-9]+\)$'
# Not a terminal: progress as whole lines, never a carriage return.
if grep -q $'\r' "$out"; then fail "cluster leave wrote a carriage return to a pipe"; fi
rc=0
for ((i = 0; i < 500; i++)); do  # 10 s for n2 to exit by itself
  kill -0 "${pids[1]}" 2>/dev/null || break
  sleep 0.02
done
wait "${pids[1]}" || rc=$?
[[ $rc == 0 ]] || fail "n2 exited $rc after leaving, want 0"
grep -q 'left the cluster' "$work/n2/ringcached.log" || fail "n2 did not log that it left"
remaining=("${addrs[0]}" "${addrs[2]}" "${addrs[3]}")
wait_serving 3 "${remaining[@]}"
expect 0 "$cli" --addr "${addrs[0]}" cluster status
if grep -q '^n2 ' "$out"; then fail "n2 is still in the view after it left"; fi
for a in "${remaining[@]}"; do
  for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    expect 0 "$cli" --addr "$a" get "key$k"
    out_is "value$k"
  done
done
ok "cluster leave: n2 streams its ranges away, leaves the view, exits 0; every key still reads"

expect 3 "$cli" --addr "${addrs[1]}" --timeout-ms 1000 cluster leave
err_has "cannot reach ${addrs[1]}"
ok "cluster leave of a node that is gone: exit 3, naming the address"

# --- a member that dies ----------------------------------------------------------------------
# n1, n3, n4 vote; n1 and n4 suspect n3 (2 of 3) and the coordinator n1 marks it failed
# within about --failure-timeout-ms (1 s) + a heartbeat.
kill -KILL "${pids[2]}"
wait "${pids[2]}" 2>/dev/null || true
failed=0
for ((i = 0; i < 100; i++)); do  # 10 s
  rc=0
  "$cli" --addr "${addrs[0]}" --timeout-ms 2000 cluster status >"$out" 2>"$err" || rc=$?
  if [[ $rc == 0 ]] && grep -Eq "^n3 +${addrs[2]//./\\.} +failed " "$out"; then
    failed=1
    break
  fi
  # Until then n3 is a member that does not answer: listed as unreachable, exit 3.
  [[ $rc == 3 ]] || fail "cluster status exited $rc while n3 is down, want 3 (or 0 once failed)"
  sleep 0.1
done
((failed)) || fail "n3 was not declared failed within 10 s"
out_matches "^n3 +${addrs[2]//./\\.} +failed +- .*down: UNAVAILABLE"
out_matches '^failed members: n3 '
out_matches '^n1 .* ok$'
ok "kill -9 n3: declared failed within seconds; cluster status lists it as failed, exit 0"

for a in "${addrs[0]}" "${addrs[3]}"; do
  for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    expect 0 "$cli" --addr "$a" --timeout-ms 2000 get "key$k"
    out_is "value$k"
  done
done
ok "with n3 failed, its keys are served by their replicas: every key reads through n1 and n4"

echo "$passed passed, 0 failed"
