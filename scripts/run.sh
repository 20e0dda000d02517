#!/usr/bin/env bash
# scripts/run.sh: README's first command. On a fresh Debian 12 machine, as root:
# installs the dependencies, builds what the main job needs (build/, RelWithDebInfo, the
# same build directory and type as scripts/test.sh, so neither rebuilds the other), runs it.
#
# The main job is a local 3-node ringcached cluster (the MAIN JOB section below).
#
# Knobs (environment): JOBS=N parallel build jobs (default 2).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

JOBS="${JOBS:-2}"
build_dir="build"

section() {
  printf '\n==== %s ====\n' "$*"
}

# ---- MAIN JOB --------------------------------------------------------------------------
# Starts a local 3-node ringcached cluster (replication factor 2: every key has a primary
# and one replica), shows it working with ringcache-cli and with a Python gRPC client
# (stubs generated from the .proto at run time), then keeps serving until Ctrl-C.
# RINGCACHE_DEMO_ONLY=1 stops the cluster after the demo instead (for scripts).
# Knobs: RINGCACHE_BASE_PORT (default 7701: gRPC ports 7701-7703, metrics 9701-9703),
# RINGCACHE_RESP_BASE_PORT (default 6381: the Redis-protocol ports 6381-6383).
main_job_description="a local 3-node ringcached cluster, driven by ringcache-cli and Python"
main_job_targets=(ringcached ringcache-cli)
# Globals, not locals: the EXIT trap runs after main_job has returned.
run_dir=""
pids=()
addrs=()
cluster_addrs=()
main_job() {
  local base="${RINGCACHE_BASE_PORT:-7701}" resp_base="${RINGCACHE_RESP_BASE_PORT:-6381}"
  run_dir="$(mktemp -d /tmp/ringcache-run.XXXXXX)"
  local ringcached="${build_dir}/daemon/node/ringcached"
  local cli="${build_dir}/daemon/cli/ringcache-cli"

  # shellcheck disable=SC2317  # called by the trap
  stop_cluster() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
    echo
    echo "cluster stopped (logs: ${run_dir}/n*.log)"
  }
  trap stop_cluster EXIT

  # The cluster plane (joins, views, heartbeats, replication, forwarded calls) accepts only
  # callers holding this secret (docs/security.md). Readable by this user alone.
  local secret_file="${run_dir}/cluster.secret"
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${secret_file}")

  # start_node <index> [seed address]: node n<index> on port base+index-1, its cluster
  # plane on base+1000+index-1: members call each other only there (docs/security.md), so
  # a firewall could keep it to the members' network. Seeds are cluster addresses.
  start_node() {
    local i="$1" seed="${2:-}"
    local addr="127.0.0.1:$((base + i - 1))" metrics="127.0.0.1:$((base + 2000 + i - 1))"
    local cluster="127.0.0.1:$((base + 1000 + i - 1))"
    local resp="127.0.0.1:$((resp_base + i - 1))"
    local ready="${run_dir}/n${i}.ready" log="${run_dir}/n${i}.log"
    local args=(--node-id "n${i}" --listen "${addr}" --metrics-listen "${metrics}"
                --resp-listen "${resp}"
                --memory 256MiB --replication-factor 2 --ready-file "${ready}"
                --cluster-listen "${cluster}" --cluster-secret-file "${secret_file}")
    if [ -n "${seed}" ]; then args+=(--seeds "${seed}"); fi
    "${ringcached}" "${args[@]}" 2>"${log}" &
    pids+=("$!")
    addrs+=("${addr}")
    cluster_addrs+=("${cluster}")
    local waited=0
    while [ ! -s "${ready}" ]; do
      if ! kill -0 "${pids[-1]}" 2>/dev/null || [ "${waited}" -ge 300 ]; then
        echo "ringcached n${i} did not start (is ${addr}, ${cluster}, ${metrics} or ${resp} in use?). Its log:" >&2
        cat "${log}" >&2
        exit 1
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    echo "n${i} started on ${addr} (cluster plane ${cluster}, metrics http://${metrics}/metrics, Redis protocol ${resp})"
  }

  start_node 1
  start_node 2 "${cluster_addrs[0]}"
  start_node 3 "${cluster_addrs[0]}"
  # A joiner is JOINING until its ranges have arrived: wait (bounded, 20 s) until every
  # member serves, as an operator watching `cluster status` would.
  local tries=0 status=""
  while true; do
    status=$("${cli}" --addr "${addrs[0]}" cluster status 2>&1) &&
      ! grep -qE 'joining|leaving' <<<"${status}" && break
    tries=$((tries + 1))
    if [ "${tries}" -ge 200 ]; then
      echo "the cluster did not converge within 20 s:" >&2
      echo "${status}" >&2
      break
    fi
    sleep 0.1
  done
  echo
  echo "---- n3's log:"
  cat "${run_dir}/n3.log"

  local c1=("${cli}" --addr "${addrs[0]}") c2=("${cli}" --addr "${addrs[1]}")
  local c3=("${cli}" --addr "${addrs[2]}")
  echo
  echo "\$ ringcache-cli --addr ${addrs[0]} cluster status"; "${c1[@]}" cluster status
  echo
  echo "# Any node accepts any key: n1 forwards each write to the key's primary."
  echo "\$ ringcache-cli --addr ${addrs[0]} set greeting 'hello, ringcache' --ttl 60000"
  "${c1[@]}" set greeting 'hello, ringcache' --ttl 60000
  local k
  for k in user:1 user:2 user:3 user:4 user:5 user:6; do "${c1[@]}" set "${k}" "value of ${k}" >/dev/null; done
  echo "\$ ringcache-cli --addr ${addrs[1]} get greeting"; "${c2[@]}" get greeting; echo
  echo "\$ ringcache-cli --addr ${addrs[2]} mget user:1 user:2 user:3 user:4 user:5 user:6 missing"
  "${c3[@]}" mget user:1 user:2 user:3 user:4 user:5 user:6 missing
  echo "# Write concern 1: the reply waits until the key's replica has acknowledged the write."
  echo "\$ ringcache-cli --addr ${addrs[2]} incr visits 5 --wc 1"; "${c3[@]}" incr visits 5 --wc 1
  echo "\$ ringcache-cli --addr ${addrs[1]} get visits --read any"; "${c2[@]}" get visits --read any; echo
  echo
  echo "---- any Redis client, through any node's Redis-protocol port (docs/redis.md)"
  local r2=$((resp_base + 1)) r3=$((resp_base + 2))
  echo "\$ redis-cli -p ${r2} get greeting"; redis-cli -p "${r2}" get greeting
  echo "\$ redis-cli -p ${r3} mget user:1 user:2 missing"; redis-cli -p "${r3}" mget user:1 user:2 missing
  echo "\$ redis-cli -p ${r3} incrby visits 10"; redis-cli -p "${r3}" incrby visits 10
  echo
  echo "---- a Python service calling the cluster with only the .proto (examples/python/client.py)"
  /usr/bin/python3 examples/python/client.py --addr "${addrs[1]}"
  echo
  echo "\$ ringcache-cli --addr ${addrs[0]} cluster status"; "${c1[@]}" cluster status

  if [ "${RINGCACHE_DEMO_ONLY:-0}" = "1" ]; then
    return 0
  fi
  echo
  echo "The cluster is serving on ${addrs[*]}."
  echo "Try: ${cli} --addr ${addrs[0]} cluster status"
  echo "Press Ctrl-C to stop it."
  wait "${pids[0]}" || true
}
# ---- end of MAIN JOB -------------------------------------------------------------------

install_deps() {
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install-deps.sh
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo bash scripts/install-deps.sh
  else
    echo "[run.sh] not root and no passwordless sudo: assuming the dependencies are installed"
  fi
}

build() {
  local args=(-S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGCACHE_SANITIZE=
              -DRINGCACHE_BUILD_EXAMPLES=ON)
  # Ninja only on the first configure: CMake cannot switch a build directory's generator.
  if [ ! -f "${build_dir}/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    args+=(-G Ninja)
  fi
  if command -v ccache >/dev/null 2>&1; then
    args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake "${args[@]}"
  cmake --build "${build_dir}" -j "${JOBS}" --target "${main_job_targets[@]}"
}

section "Dependencies (scripts/install-deps.sh)"
install_deps

section "Build (${build_dir}/, RelWithDebInfo): ${main_job_targets[*]}"
build

section "Run: ${main_job_description}"
main_job
