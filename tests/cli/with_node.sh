#!/usr/bin/env bash
# Runs a command against a fresh ringcached: with_node.sh RINGCACHED COMMAND [ARGS...]
# Every "{addr}" in ARGS becomes the node's HOST:PORT (also exported as RINGCACHE_ADDR).
# Exit code: the command's; 1 if the node does not stop cleanly (exit 0) on SIGTERM.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/node_lib.sh"

ringcached=$1
shift
work=$(mktemp -d "${TMPDIR:-/tmp}/ringcache-with-node.XXXXXX")
trap 'node_stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

node_start "$ringcached" "$work" --node-id with-node --log-level warn
export RINGCACHE_ADDR=$NODE_ADDR
args=()
for arg in "$@"; do args+=("${arg//\{addr\}/$NODE_ADDR}"); done

rc=0
"${args[@]}" || rc=$?
node_stop
if [[ $NODE_RC != 0 ]]; then
  echo "with_node.sh: ringcached exited with '$NODE_RC' after SIGTERM (want 0); its log:" >&2
  cat "$NODE_LOG" >&2
  [[ $rc != 0 ]] || rc=1
fi
exit "$rc"
