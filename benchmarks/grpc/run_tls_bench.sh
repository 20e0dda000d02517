#!/usr/bin/env bash
# run_tls_bench.sh: the cost of TLS and of client tokens, side by side in one run
# (run_ab_bench.sh with the same ringcached twice): A plaintext without tokens, B with TLS
# (test certificates from tests/integration/make_test_certs.sh) and, with --tokens, a
# client token on every call. With --nodes 3 the members also talk to each other over TLS
# (forwarded calls and replication).
#
# Usage: run_tls_bench.sh --ringcached BIN --loadgen BIN [--tokens] [run_ab_bench.sh flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN="" LOADGEN="" TOKENS=0 REST=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ringcached) BIN="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --tokens) TOKENS=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) REST+=("$1") ;;
  esac
  shift
done
[[ -x "$BIN" && -x "$LOADGEN" ]] || { echo "run_tls_bench.sh: give --ringcached and --loadgen" >&2; exit 2; }
dir=$(mktemp -d /tmp/ringcache-tls-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
bash "$here/../../tests/integration/make_test_certs.sh" "$dir"
b_args="--tls-cert-file $dir/node.pem --tls-key-file $dir/node.key --tls-ca-file $dir/ca.pem"
b_client="--tls-ca-file $dir/ca.pem"
if ((TOKENS)); then
  (umask 077; echo "bench-cluster-secret-0123456789" >"$dir/secret"
   echo "bench read-write bench-token-0123456789abcdef" >"$dir/tokens"
   echo "bench-token-0123456789abcdef" >"$dir/token")
  b_args+=" --cluster-secret-file $dir/secret --auth-tokens-file $dir/tokens"
  b_client+=" --token-file $dir/token"
fi
echo "A: plaintext; B: TLS$( ((TOKENS)) && echo ' + a client token on every call')"
"$here/run_ab_bench.sh" --a "$BIN" --b "$BIN" --loadgen "$LOADGEN" --b-args "$b_args" \
  --b-client "$b_client" "${REST[@]}"
