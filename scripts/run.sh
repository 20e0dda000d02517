#!/usr/bin/env bash
# scripts/run.sh: README's first command. On a fresh Debian 12 machine, as root:
# installs the dependencies, builds what the main job needs (build/, Release), runs it.
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
# The build targets the main job needs, and the main job itself.
main_job_description="examples/embedded (ringcache embedded in a C++ program)"
main_job_targets=(embedded_example)
main_job() {
  "${build_dir}/examples/embedded/embedded_example"
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
  local args=(-S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release -DRINGCACHE_SANITIZE=
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

section "Build (${build_dir}/, Release): ${main_job_targets[*]}"
build

section "Run: ${main_job_description}"
main_job
