#!/usr/bin/env bash
# ringcache-cli against a real 3-node cluster on 127.0.0.1 (n1 bootstraps, n2 and n3 join
# through it; replication factor 2): any node serves any key, `cluster status`, write
# concern (--wc) and read preference (--read any), and a member that is down.
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
  for n in 1 2 3; do
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

# Joins are done when each node's ready file exists, but n1 and n2 learn of n3 by a push:
# wait (bounded) until every node reports 3 members.
for ((i = 0; i < 250; i++)); do  # 250 x 20 ms = 5 s
  converged=1
  for a in "${addrs[@]}"; do
    "$cli" --addr "$a" cluster status >"$out" 2>"$err" || true
    [[ $(grep -c ' serving ' "$out" || true) == 3 ]] || converged=0
  done
  ((converged)) && break
  sleep 0.02
done
((converged)) || fail "the nodes did not agree on 3 members within 5 s"

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
out_matches '^ID +ADDRESS +STATE +WEIGHT +PRIMARY +OWNER +EPOCH +ITEMS +STATUS$'
for n in 1 2 3; do
  out_matches "^n$n +${addrs[$((n - 1))]//./\\.} +serving +1 +[0-9]+\\.[0-9]% +[0-9]+\\.[0-9]% +[0-9]+ +[0-9]+ +ok$"
done
out_matches '^FROM +TO +STATE +LAG_OPS +LAG_MS +ACKED_SEQ +LAST_SEQ +BACKLOG +RESUMES +FULL_SYNCS$'
out_matches '^n1 +n[23] +[a-z_]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ '
# Shares add up: primaries to ~100%, owners to ~200% (replication factor 2).
primary_sum=$(awk '$3 == "serving" { sub("%", "", $5); s += $5 } END { printf "%.0f", s }' "$out")
owner_sum=$(awk '$3 == "serving" { sub("%", "", $6); s += $6 } END { printf "%.0f", s }' "$out")
[[ $primary_sum == 100 ]] || fail "primary shares add up to $primary_sum%, want 100%"
[[ $owner_sum == 200 ]] || fail "owner shares add up to $owner_sum%, want 200%"
ok "cluster status: members with address, state, weight, shares (100% / 200%), epochs, links"

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
ok "--help documents cluster status, --wc and --read; 'cluster' alone is a usage error"

# --- a member that is down ------------------------------------------------------------------
kill -KILL "${pids[2]}"
wait "${pids[2]}" 2>/dev/null || true
expect 3 "$cli" --addr "${addrs[0]}" --timeout-ms 2000 cluster status
out_matches "^n3 +${addrs[2]//./\\.} +serving .*unreachable: UNAVAILABLE"
out_matches '^n1 .* ok$'
err_has "1 of 3 members did not answer Stats: n3"
ok "cluster status with a member down: listed as unreachable, exit 3"

for a in "${addrs[0]}" "${addrs[1]}"; do
  for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    rc=0
    "$cli" --addr "$a" --timeout-ms 2000 get "key$k" >"$out" 2>"$err" || rc=$?
    if [[ $rc == 0 ]]; then
      out_is "value$k"
    else
      [[ $rc == 3 ]] || fail "get key$k through $a exited $rc, want 0 or 3"
      err_has "UNAVAILABLE: cannot reach node n3"
    fi
  done
done
ok "with n3 down, its keys fail with 'UNAVAILABLE: cannot reach node n3' (3), the rest read"

echo "$passed passed, 0 failed"
