#!/usr/bin/env bash
# ringcache-cli as a shell user uses it, against a real ringcached on 127.0.0.1:
# outputs, binary-safe values through stdin and files, and the exit codes of the contract
# (0 ok; 1 not found / condition not met; 2 usage error; 3 other error).
#
#   tests/cli/cli_test.sh <build>/daemon/node/ringcached <build>/daemon/cli/ringcache-cli
set -euo pipefail

ringcached=${1:?usage: cli_test.sh RINGCACHED RINGCACHE_CLI}
cli=${2:?usage: cli_test.sh RINGCACHED RINGCACHE_CLI}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/node_lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/ringcache-cli-test.XXXXXX")
trap 'node_stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
out=$work/out
err=$work/err
passed=0

fail() {
  echo "FAIL: $*" >&2
  echo "--- stdout of the last command:" >&2
  head -c 2000 "$out" >&2 || true
  echo "--- stderr of the last command:" >&2
  head -c 2000 "$err" >&2 || true
  echo "--- ringcached log (tail):" >&2
  tail -n 30 "$NODE_LOG" >&2 || true
  echo "$passed passed, 1 failed"
  exit 1
}

ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}

# expect RC CMD...: runs CMD with stdout in $out and stderr in $err; checks its exit code.
expect() {
  local want=$1
  shift
  local got=0
  "$@" >"$out" 2>"$err" || got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, want $want"
}

# expect_stdin RC FILE CMD...: like expect, with stdin from FILE.
expect_stdin() {
  local want=$1 input=$2
  shift 2
  local got=0
  "$@" <"$input" >"$out" 2>"$err" || got=$?
  [[ $got == "$want" ]] || fail "'$* < $input' exited $got, want $want"
}

out_is() {  # exact stdout, byte for byte (no trailing newline added)
  printf '%s' "$1" >"$work/want"
  cmp -s "$work/want" "$out" || fail "stdout is '$(cat "$out")', want '$1'"
}
out_matches() { grep -Eq -- "$1" "$out" || fail "stdout does not match /$1/"; }
err_has() { grep -Fq -- "$1" "$err" || fail "stderr does not contain '$1'"; }
err_empty() { [[ ! -s $err ]] || fail "stderr is not empty"; }

node_start "$ringcached" "$work" --node-id cli-test --log-level warn
addr=$NODE_ADDR
export RINGCACHE_ADDR=$addr  # the CLI's default address; most commands below rely on it
echo "# ringcached pid $NODE_PID at $addr"

# --- set / get -----------------------------------------------------------------------------
expect 0 "$cli" set greeting hello
out_matches '^[0-9]+$'
err_empty
expect 0 "$cli" get greeting
out_is "hello"   # raw: no newline when stdout is not a terminal
ok "set then get round-trips a value, get adds no newline to a pipe"

expect 0 "$cli" --addr "$addr" get greeting
out_is "hello"
expect 0 "$cli" get greeting --addr "$addr" --timeout-ms 2000
out_is "hello"
ok "--addr and --timeout-ms before or after the command"

expect 0 "$cli" set empty ""
expect 0 "$cli" get empty
out_is ""
expect 0 "$cli" set dash -- -abc
expect 0 "$cli" get dash
out_is "-abc"
ok "empty value, and a value starting with '-' after --"

# Binary data with NULs and every byte value, through stdin and through --file.
head -c 200000 /dev/urandom >"$work/bin"
printf '\000\001\377\n\000' >>"$work/bin"
expect_stdin 0 "$work/bin" "$cli" set bin -
expect 0 "$cli" get bin
cmp -s "$work/bin" "$out" || fail "binary value read from stdin did not round-trip"
ok "binary value through stdin ('-') round-trips (cmp)"

expect 0 "$cli" set binfile --file "$work/bin"
"$cli" get binfile >"$work/got" || fail "get binfile"
cmp -s "$work/bin" "$work/got" || fail "binary value read with --file did not round-trip"
ok "binary value through --file round-trips (cmp)"

# 6 MiB: over gRPC's default 4 MiB receive limit, under ringcached's default 8 MiB values.
head -c $((6 << 20)) /dev/zero | tr '\0' 'x' >"$work/big"
expect_stdin 0 "$work/big" "$cli" set big -
"$cli" get big >"$work/got" || fail "get big"
cmp -s "$work/big" "$work/got" || fail "6 MiB value did not round-trip"
ok "a 6 MiB value round-trips"

expect 2 "$cli" set both v --file "$work/bin"
err_has "not both"
expect 2 "$cli" set novalue
expect 2 "$cli" set nofile --file "$work/no-such-file"
ok "set with both VALUE and --file, with neither, or with a missing file: usage error (2)"

# --- missing keys --------------------------------------------------------------------------
expect 1 "$cli" get no-such-key
out_is ""
err_has "ringcache-cli: NOT_FOUND: "
ok "get of a missing key exits 1 with 'ringcache-cli: NOT_FOUND: ...'"

# --- TTL -----------------------------------------------------------------------------------
expect 0 "$cli" set session v --ttl 60000
expect 0 "$cli" ttl session
out_matches '^[0-9]+$'
ms=$(cat "$out")
((ms > 0 && ms <= 60000)) || fail "ttl after --ttl 60000 is $ms"
expect 0 "$cli" set forever v
expect 0 "$cli" ttl forever
out_is $'0\n'
ok "set --ttl then ttl (0 < $ms <= 60000); no TTL prints 0"

expect 0 "$cli" touch forever 30000
expect 0 "$cli" ttl forever
ms=$(cat "$out")
((ms > 0 && ms <= 30000)) || fail "ttl after touch 30000 is $ms"
expect 0 "$cli" touch forever 0
expect 0 "$cli" ttl forever
out_is $'0\n'
expect 1 "$cli" touch no-such-key 5
err_has "NOT_FOUND"
expect 1 "$cli" ttl no-such-key
ok "touch sets and clears a TTL; touch/ttl of a missing key exit 1"

expect 0 "$cli" set brief v --ttl 300
expect 0 "$cli" get brief
gone=0
for ((i = 0; i < 150; i++)); do  # bounded: 150 x 20 ms = 3 s
  rc=0
  "$cli" get brief >/dev/null 2>&1 || rc=$?
  if [[ $rc == 1 ]]; then gone=1; break; fi
  [[ $rc == 0 ]] || fail "get brief exited $rc while waiting for expiry"
  sleep 0.02
done
((gone)) || fail "a key with --ttl 300 was still there after 3 s"
ok "a key set with --ttl 300 expires (get exits 1)"

# --- conditional set -----------------------------------------------------------------------
expect 0 "$cli" set once first --if-absent
expect 1 "$cli" set once second --if-absent
err_has "ringcache-cli: ALREADY_EXISTS: "
expect 0 "$cli" get once
out_is "first"
ok "set --if-absent twice: the second exits 1 (ALREADY_EXISTS) and changes nothing"

expect 1 "$cli" set absent v --if-present
err_has "NOT_FOUND"
expect 0 "$cli" set once third --if-present
ok "set --if-present: exit 1 on a missing key, 0 on a present one"

expect 0 "$cli" set cas v1
v1=$(cat "$out")
expect 0 "$cli" set cas v2 --if-version "$v1"
v2=$(cat "$out")
((v2 > v1)) || fail "version after CAS ($v2) not above $v1"
expect 1 "$cli" set cas v3 --if-version "$v1"
err_has "ringcache-cli: FAILED_PRECONDITION: "
expect 0 "$cli" get cas
out_is "v2"
expect 2 "$cli" set cas v4 --if-version "$v2" --if-absent
ok "set --if-version: right version 0, stale version 1 (FAILED_PRECONDITION), with --if-absent 2"

# --- del -----------------------------------------------------------------------------------
expect 0 "$cli" del greeting
out_is $'1\n'
expect 1 "$cli" get greeting
expect 1 "$cli" del greeting
err_has "NOT_FOUND"
expect 0 "$cli" set d1 x
expect 0 "$cli" set d2 x
expect 1 "$cli" del d1 missing d2
out_is $'2\n'
err_has "missing"
ok "del: removes, exits 1 for a missing key; del of 3 keys with one missing prints 2, exits 1"

# --- incr ----------------------------------------------------------------------------------
expect 0 "$cli" incr hits
out_is $'1\n'
expect 0 "$cli" incr hits 10
out_is $'11\n'
expect 0 "$cli" incr hits -5
out_is $'6\n'
expect 0 "$cli" incr hits -- -10
out_is $'-4\n'
expect 0 "$cli" get hits
out_is "-4"
expect 1 "$cli" incr once
err_has "FAILED_PRECONDITION"
expect 2 "$cli" incr hits abc
expect 0 "$cli" incr fl --float 10.5
out_is $'10.5\n'
expect 0 "$cli" incr fl --float 0.1
out_is $'10.6\n'
expect 0 "$cli" incr fl --float=-0.6
out_is $'10\n'
expect 1 "$cli" incr once --float 1
err_has "not a valid float"
expect 2 "$cli" incr fl 5 --float 1
ok "incr: default 1, positive and negative deltas, non-integer value exits 1; --float adds floats"

# --- mset / mget ---------------------------------------------------------------------------
expect 0 "$cli" mset k1 one k2 two
out_matches $'^k1\t[0-9]+$'
out_matches $'^k2\t[0-9]+$'
expect 0 "$cli" mget k1 missing k2
out_is $'k1\tone\nmissing\t(not found)\nk2\ttwo\n'
expect 2 "$cli" mset k1 one k2
err_has "pairs"
ok "mset pairs; mget prints KEY<TAB>VALUE or (not found) per key and exits 0; odd mset is 2"

# --- hashes, lists and sets ----------------------------------------------------------------
expect 0 "$cli" hset user:1 name ada lang c++
out_is $'2\n'
expect 0 "$cli" hgetall user:1
out_is $'name\tada\nlang\tc++\n'
expect 0 "$cli" hmget user:1 lang nope
out_is $'c++\n(nil)\n'
expect 1 "$cli" hget user:1 nope
err_has "(nil)"
expect 0 "$cli" hincrby user:1 visits -3
out_is $'-3\n'
expect 2 "$cli" hincrby user:1 visits abc
err_has "value is not an integer or out of range"
expect 2 "$cli" hset user:1 lonely
err_has "wrong number of arguments for 'hset' command"
expect 0 "$cli" rpush jobs j1 j2 j3
out_is $'3\n'
expect 0 "$cli" lpop jobs 2
out_is $'j1\nj2\n'
expect 0 "$cli" lrange jobs 0 -1 --read any
out_is $'j3\n'
expect 2 "$cli" linsert jobs middle j3 x
err_has "syntax error"
expect 0 "$cli" sadd tags x y x
out_is $'2\n'
expect 0 "$cli" smismember tags y z
out_is $'1\n0\n'
expect 1 "$cli" lpush user:1 x
err_has "WRONGTYPE Operation against a key holding the wrong kind of value"
expect 1 "$cli" get user:1
err_has "WRONGTYPE"
expect 0 "$cli" rpush letters a b c b
expect 0 "$cli" lpos letters b
out_is $'1\n'
expect 0 "$cli" lpos letters b COUNT 0
out_is $'1\n3\n'
expect 1 "$cli" lpos letters zz
expect 0 "$cli" spop tags 5
[[ $(sort "$out" | tr '\n' ' ') == "x y " ]] || fail "spop tags 5 printed '$(cat "$out")', want x and y"
expect 1 "$cli" spop tags
expect 0 "$cli" hscan user:1 0 MATCH '[nl]a*'  # a bracket class is a pattern, not a list
out_is $'0\nname\tada\nlang\tc++\n'
expect 2 "$cli" get user:1 extra
err_has "The following argument was not expected: extra"
expect 0 "$cli" sadd dashes -- --tls  # after '--', a member, not an option
expect 0 "$cli" smembers dashes
out_is $'--tls\n'
expect 2 "$cli" sadd dashes m --tsl  # a mistyped option is refused, not stored
err_has "not expected: --tsl"
ok "hash, list and set commands print their replies and Redis's errors"

# --- publish / subscribe -------------------------------------------------------------------
"$cli" subscribe news --pattern 'user:*' --count 3 >"$work/sub.out" 2>"$work/sub.err" &
sub_pid=$!
for _ in $(seq 1 100); do grep -q "subscribed on" "$work/sub.err" 2>/dev/null && break; sleep 0.05; done
grep -q "subscribed on cli-test: 1 channel(s), 1 pattern(s)" "$work/sub.err" ||
  fail "subscribe did not report its subscription: $(cat "$work/sub.err")"
expect 0 "$cli" publish news "hello world"
out_is $'1\n'
expect 0 "$cli" publish other x
out_is $'0\n'
expect 0 "$cli" publish user:7 $'bin\x01ary'
expect 0 "$cli" publish news again
wait "$sub_pid" || fail "subscribe --count 3 exited $?"
[[ $(cat "$work/sub.out") == $'news\thello world\nuser:7\tbin\\x01ary\tuser:*\nnews\tagain' ]] ||
  fail "subscribe printed: $(cat -A "$work/sub.out")"
expect 2 "$cli" subscribe
err_has "give at least one channel or --pattern"
ok "publish counts the subscribers; subscribe prints channel, message and pattern"

# --- stats / ping --------------------------------------------------------------------------
expect 0 "$cli" stats
out_matches '^node +cli-test$'
out_matches '^items +[0-9]+$'
out_matches '^hits +[0-9]+$'
out_matches '^capacity '
ok "stats prints a table"

expect 0 "$cli" ping
out_matches '^PONG [0-9]+\.[0-9]+ ms$'
ok "ping prints PONG <latency>"

# --- one node as a cluster ----------------------------------------------------------------
expect 0 "$cli" cluster status
out_matches '^cluster view epoch 1 from .*: 1 members, replication factor 2, 160 vnodes per weight$'
out_matches "^cli-test +${addr//./\\.} +serving +serving +1 +100\.0% +100\.0% +1 +[0-9]+ +[0-9]+ +ok$"
out_matches '^\(none\)$'
ok "cluster status of a single node: epoch 1, itself with 100% of the keys, no links"

# Replication factor 2 but no replica to ack: the write is applied, 0 of 1 acked: exit 1.
expect 1 "$cli" set lonely v --wc 1 --wc-timeout-ms 200
out_matches '^[0-9]+$'
err_has "0/1 replicas acked (the write is applied on the primary)"
expect 0 "$cli" get lonely --read any
out_is "v"
expect 3 "$cli" set lonely v --wc 2
err_has "INVALID_ARGUMENT: write_concern 2 is over the replication factor's 1 replicas"
ok "--wc 1 on a single node: '0/1 replicas acked', exit 1; --wc 2 is INVALID_ARGUMENT (3)"

# --- usage and other errors ----------------------------------------------------------------
expect 2 "$cli"
expect 2 "$cli" frobnicate
err_has "frobnicate"
expect 2 "$cli" get
expect 2 "$cli" get a b
expect 2 "$cli" set k v --ttl -1
expect 2 "$cli" --timeout-ms 0 ping
expect 2 "$cli" --addr nonsense ping
ok "usage errors exit 2"

expect 0 "$cli" --help
out_matches 'Usage:'
for cmd in get set del touch ttl incr mget mset stats ping cluster; do
  expect 0 "$cli" "$cmd" --help
  out_matches "Usage: .*$cmd"
done
expect 0 "$cli" --version
out_matches '^ringcache-cli [0-9]'
ok "--help on the program and on every command, --version"

expect 3 "$cli" get ""
err_has "ringcache-cli: INVALID_ARGUMENT: "
ok "an empty key is INVALID_ARGUMENT: exit 3"

# A port nothing listens on: bind one, note it, release it.
dead_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect 3 "$cli" --addr "127.0.0.1:$dead_port" get greeting
err_has "ringcache-cli: UNAVAILABLE: cannot reach 127.0.0.1:$dead_port"
expect 3 "$cli" --addr "127.0.0.1:$dead_port" ping
ok "a dead address exits 3: 'UNAVAILABLE: cannot reach 127.0.0.1:$dead_port (...)'"

# --- shutdown ------------------------------------------------------------------------------
node_stop
[[ $NODE_RC == 0 ]] || fail "ringcached exited with '$NODE_RC' after SIGTERM, want 0"
expect 3 "$cli" ping
err_has "UNAVAILABLE"
ok "SIGTERM stops ringcached with exit code 0; then ping exits 3"

# --- client tokens ---------------------------------------------------------------------------
(umask 077
 echo "cli-test-cluster-secret-0123" >"$work/secret"
 printf 'reports read reader-0123456789abcdef\nweb read-write writer-0123456789abcdef\n' >"$work/tokens"
 echo "reader-0123456789abcdef" >"$work/reader.token"
 echo "writer-0123456789abcdef" >"$work/writer.token")
node_start "$ringcached" "$work" --cluster-secret-file "$work/secret" --auth-tokens-file "$work/tokens"
export RINGCACHE_ADDR=$NODE_ADDR
expect 3 "$cli" get greeting
err_has "ringcache-cli: UNAUTHENTICATED: Cache.Get needs a client token: the call carries no client token"
expect 0 "$cli" --token-file "$work/writer.token" set greeting hello
expect 0 "$cli" --token-file "$work/reader.token" get greeting
out_is "hello"
expect 3 "$cli" --token-file "$work/reader.token" set greeting bye
err_has "PERMISSION_DENIED: Cache.Set needs the role read-write and this caller's token has the role read"
RINGCACHE_TOKEN_FILE=$work/reader.token expect 0 "$cli" stats
ok "with --auth-tokens-file: no token exits 3 (UNAUTHENTICATED), a read token reads and cannot write"
node_stop

# --- TLS -----------------------------------------------------------------------------------
bash "$here/../integration/make_test_certs.sh" "$work/certs"
node_start "$ringcached" "$work" --tls-cert-file "$work/certs/node.pem" \
  --tls-key-file "$work/certs/node.key"
export RINGCACHE_ADDR=$NODE_ADDR
expect 0 "$cli" --tls-ca-file "$work/certs/ca.pem" set greeting hello
expect 0 "$cli" --tls-ca-file "$work/certs/ca.pem" get greeting
out_is "hello"
expect 3 "$cli" get greeting
err_has "if the node serves TLS, add --tls or --tls-ca-file"
expect 3 "$cli" --tls-ca-file "$work/certs/other-ca.pem" get greeting
err_has "certificate verify failed"
[[ ! -s $err ]] || ! grep -q "^E[0-9]" "$err" || fail "gRPC's own log lines reached stderr"
# The certificate names 127.0.0.1 and localhost; another name is refused unless overridden.
port=${NODE_ADDR##*:}
expect 0 "$cli" --addr "localhost:$port" --tls-ca-file "$work/certs/ca.pem" get greeting
expect 3 "$cli" --tls-ca-file "$work/certs/ca.pem" --tls-server-name ringcache.example get greeting
ok "TLS: --tls-ca-file connects, plaintext and another CA exit 3 with the reason"
node_stop

echo "$passed passed, 0 failed"
