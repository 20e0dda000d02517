#!/usr/bin/env bash
# scripts/run.sh: README's first command. On a fresh Debian 12 machine, as root:
# installs the dependencies, builds what the main job needs (build/, RelWithDebInfo, the
# same build directory and type as scripts/test.sh, so neither rebuilds the other), runs it.
#
# The main job today is examples/embedded: a program that embeds ringcache's cache and
# hash ring. When the ringcached daemon exists, the main job becomes "start a local
# 3-node ringcached cluster": change only the MAIN JOB section below.
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
# Starts a local ringcached node, shows it working with ringcache-cli and with a Python
# gRPC client (stubs generated from the .proto at run time), then keeps serving until
# Ctrl-C. RINGCACHE_DEMO_ONLY=1 stops the node after the demo instead (for scripts).
# Issue 4 (cluster) turns this into a local 3-node cluster with replication.
# Knobs: RINGCACHE_ADDR (default 127.0.0.1:7700), RINGCACHE_METRICS (127.0.0.1:9700).
main_job_description="a local ringcached node, driven by ringcache-cli and a Python client"
main_job_targets=(ringcached ringcache-cli)
main_job() {
  local addr="${RINGCACHE_ADDR:-127.0.0.1:7700}"
  local metrics="${RINGCACHE_METRICS:-127.0.0.1:9700}"
  local run_dir
  run_dir="$(mktemp -d /tmp/ringcache-run.XXXXXX)"
  local ready="${run_dir}/ready" log="${run_dir}/ringcached.log"
  local ringcached="${build_dir}/daemon/node/ringcached"
  local cli="${build_dir}/daemon/cli/ringcache-cli"

  "${ringcached}" --node-id demo-1 --listen "${addr}" --metrics-listen "${metrics}" \
      --memory 256MiB --ready-file "${ready}" 2>"${log}" &
  local pid=$!
  # shellcheck disable=SC2064  # expand now: the trap must stop this very process
  trap "kill -TERM ${pid} 2>/dev/null; wait ${pid} 2>/dev/null; echo; echo 'ringcached stopped (log: ${log})'" EXIT
  local waited=0
  while [ ! -s "${ready}" ]; do
    if ! kill -0 "${pid}" 2>/dev/null || [ "${waited}" -ge 100 ]; then
      echo "ringcached did not start (is ${addr} or ${metrics} in use?). Its log:" >&2
      cat "${log}" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  cat "${log}"

  local c=("${cli}" --addr "${addr}")
  echo
  echo "\$ ringcache-cli set greeting 'hello, ringcache' --ttl 60000"; "${c[@]}" set greeting 'hello, ringcache' --ttl 60000
  echo "\$ ringcache-cli get greeting";                 "${c[@]}" get greeting; echo
  echo "\$ ringcache-cli ttl greeting";                 "${c[@]}" ttl greeting
  echo "\$ ringcache-cli incr visits 5";                "${c[@]}" incr visits 5
  echo "\$ ringcache-cli incr visits -2";               "${c[@]}" incr visits -2
  echo "\$ ringcache-cli set greeting again --if-absent  (exit 1: it exists)"
  "${c[@]}" set greeting again --if-absent || echo "(exit $?)"
  echo "\$ ringcache-cli mget greeting visits missing"; "${c[@]}" mget greeting visits missing
  echo "\$ ringcache-cli ping";                         "${c[@]}" ping
  echo
  echo "---- a Python service calling the node with only the .proto (examples/python/client.py)"
  /usr/bin/python3 examples/python/client.py --addr "${addr}"
  echo
  echo "\$ ringcache-cli stats"; "${c[@]}" stats
  echo
  echo "\$ curl -s http://${metrics}/metrics | grep ringcache_requests_total | head -5"
  curl -s "http://${metrics}/metrics" | grep '^ringcache_requests_total' | head -5

  if [ "${RINGCACHE_DEMO_ONLY:-0}" = "1" ]; then
    return 0
  fi
  echo
  echo "ringcached is serving on ${addr} (metrics: http://${metrics}/metrics)."
  echo "Try: ${cli} --addr ${addr} get greeting"
  echo "Press Ctrl-C to stop it."
  wait "${pid}" || true
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
