#!/usr/bin/env bash
# scripts/test.sh: THE test command of ringcache (README "Set up", .ci/run).
#
# On a fresh Debian 12 machine, as root: installs the dependencies, then
#   1. build/       RelWithDebInfo, -Werror: every test (unit, slow, example, bench
#                   smoke, install) with `ctest -j`;
#   2. build-asan/  ASan + UBSan (assertions on): the unit tests (`ctest -L unit`);
#   3. build-tsan/  TSan (assertions on): the unit tests (`ctest -L unit`);
#   4. source checks over lib/ and daemon/ (scripts/check_sources.py): Clang's
#                   -Wthread-safety as an error (-fsyntax-only over build/'s compile
#                   commands), and clang-format on every file;
# and ends with one line "N passed, N failed" over the three ctest runs. Exits non-zero
# if any test failed or any step (configure, build, ctest itself, a source check) went
# wrong.
#
# Knobs (environment):
#   JOBS=N                       parallel build and test jobs (default 2)
#   RINGCACHE_SKIP_SANITIZERS=1  skip steps 2 and 3 (a quick local run)
# Compilers: CC/CXX as usual for CMake (read only when a build directory is first
# configured). Builds go through ccache (default cache dir), so reruns are fast, also from
# another checkout of the repository (CCACHE_BASEDIR is the repository root, and the working
# directory is left out of the hash: CI builds a fresh clone in a new folder each time).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
# Paths under the repository are hashed relative to it, so a clone elsewhere hits the cache
# (debug info of a cached object may then name the other checkout's directory).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-${repo_root}}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"

JOBS="${JOBS:-2}"
skip_sanitizers="${RINGCACHE_SKIP_SANITIZERS:-0}"
# Umbrella target for the binaries of all unit-labelled tests (see the sanitizer steps).
unit_target="ringcache_unit_test_binaries"

total_passed=0
total_failed=0
problems=()         # steps that went wrong other than failing tests
current_step="start"
script_start="${SECONDS}"

section() {
  printf '\n==== %s ====\n' "$*"
}

# Printed however the script ends (also when `set -e` stops it at a failed build).
finish() {
  local rc=$?
  trap - EXIT
  section "Summary"
  if [ "${rc}" -ne 0 ] && [ "${current_step}" != "done" ]; then
    problems+=("stopped during: ${current_step} (exit ${rc})")
  fi
  local p
  for p in "${problems[@]+"${problems[@]}"}"; do
    echo "PROBLEM: ${p}"
  done
  if command -v ccache >/dev/null 2>&1; then
    echo "ccache (cumulative over all runs on this machine):"
    ccache --show-stats 2>/dev/null | grep -Ei '^ *(hits|misses|cache size)' || true
  fi
  echo "total time: $(( SECONDS - script_start )) s"
  echo "${total_passed} passed, ${total_failed} failed"
  if [ "${rc}" -eq 0 ] && { [ "${total_failed}" -ne 0 ] || [ "${#problems[@]}" -ne 0 ]; }; then
    rc=1
  fi
  exit "${rc}"
}
trap finish EXIT

# configure <build dir> [--target <target>] <cmake args...>: configures with Ninja when
# available (only on the first configure: CMake cannot switch a build directory's
# generator) and ccache, then builds everything, or only <target> if that target exists.
configure() {
  local dir="$1"
  shift
  local only_target=""
  if [ "${1:-}" = "--target" ]; then
    only_target="$2"
    shift 2
  fi
  local args=(-S . -B "${dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  if [ ! -f "${dir}/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    args+=(-G Ninja)
  fi
  if command -v ccache >/dev/null 2>&1; then
    args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  current_step="configure ${dir}"
  cmake "${args[@]}" "$@"
  current_step="build ${dir}"
  local targets=""
  if [ -n "${only_target}" ]; then
    targets="$(cmake --build "${dir}" --target help 2>/dev/null || true)"
  fi
  if [ -n "${only_target}" ] && grep -qE "(^|[ .])${only_target}(:|\$| )" <<<"${targets}"; then
    echo "[test.sh] building only target ${only_target} in ${dir}"
    cmake --build "${dir}" -j "${JOBS}" --target "${only_target}"
  else
    cmake --build "${dir}" -j "${JOBS}"
  fi
}

# run_ctest <build dir> <ctest args...>: runs ctest there (prefixed by the command in the
# array ctest_prefix, e.g. `env TSAN_OPTIONS=...`) and adds its counts to the totals.
# A failing test does not stop the script; the summary reports it.
ctest_prefix=()
run_ctest() {
  local dir="$1"
  shift
  local log="${dir}/ctest-summary.log"
  current_step="ctest in ${dir}"
  local rc=0
  (cd "${dir}" && "${ctest_prefix[@]+"${ctest_prefix[@]}"}" \
      ctest --output-on-failure --no-tests=error -j "${JOBS}" "$@") 2>&1 | tee "${log}" || rc=$?

  # ctest ends with e.g. "95% tests passed, 2 tests failed out of 40".
  local line
  line="$(grep -E '[0-9]+ tests? failed out of [0-9]+' "${log}" | tail -n 1 || true)"
  if [ -z "${line}" ]; then
    problems+=("ctest in ${dir} ran no tests or did not finish (exit ${rc})")
    return 0
  fi
  local failed total
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"${line}")"
  total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"${line}")"
  total_failed=$(( total_failed + failed ))
  total_passed=$(( total_passed + total - failed ))
  echo "[test.sh] ${dir}: $(( total - failed )) passed, ${failed} failed"
  if [ "${rc}" -ne 0 ] && [ "${failed}" -eq 0 ]; then
    problems+=("ctest in ${dir} exited ${rc} with no failed test")
  fi
  return 0
}

# ---------------------------------------------------------------------------------------
section "Dependencies (scripts/install-deps.sh)"
current_step="install dependencies"
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo bash scripts/install-deps.sh
else
  echo "[test.sh] not root and no passwordless sudo: assuming the dependencies are installed"
fi

# ---------------------------------------------------------------------------------------
section "1/4 build/: RelWithDebInfo, -Werror, all tests"
step_start="${SECONDS}"
configure build \
  -DRINGCACHE_WERROR=ON \
  -DRINGCACHE_SANITIZE= \
  -DRINGCACHE_BUILD_TESTS=ON \
  -DRINGCACHE_BUILD_BENCHMARKS=ON \
  -DRINGCACHE_BUILD_EXAMPLES=ON
run_ctest build
echo "[test.sh] build/ took $(( SECONDS - step_start )) s"

if [ "${skip_sanitizers}" = "1" ]; then
  section "Sanitizer builds skipped (RINGCACHE_SKIP_SANITIZERS=1)"
else
  # Sanitizer builds keep assertions on (no -DNDEBUG) and use -O1, as the sanitizer
  # documentation recommends; benchmarks, examples and the install test are left out.
  # They run only `ctest -L unit`, so if the build defines the target
  # ringcache_unit_test_binaries (the binaries of the unit-labelled tests), only that is built:
  # compiling the gRPC daemon and integration tests twice more would dominate CI time.
  # No -Werror here: GCC's flow-based warnings (-Wformat-truncation, -Wrestrict, ...)
  # give false positives on instrumented code; build/ above already enforces -Werror.
  sanitizer_args=(
    -DRINGCACHE_WERROR=OFF
    -DRINGCACHE_BUILD_TESTS=ON
    -DRINGCACHE_BUILD_BENCHMARKS=OFF
    -DRINGCACHE_BUILD_EXAMPLES=OFF
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
  )

  # -------------------------------------------------------------------------------------
  section "2/4 build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer, unit tests"
  step_start="${SECONDS}"
  configure build-asan --target "${unit_target}" "${sanitizer_args[@]}" -DRINGCACHE_SANITIZE=address,undefined
  ctest_prefix=(env "ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_string_checks=1"
                    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
  run_ctest build-asan -L unit
  ctest_prefix=()
  echo "[test.sh] build-asan/ took $(( SECONDS - step_start )) s"

  # -------------------------------------------------------------------------------------
  section "3/4 build-tsan/: ThreadSanitizer, unit tests"
  step_start="${SECONDS}"
  configure build-tsan --target "${unit_target}" "${sanitizer_args[@]}" -DRINGCACHE_SANITIZE=thread
  ctest_prefix=(env "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
  # TSan (GCC 12 / Clang 14) cannot map its shadow memory when the kernel randomizes
  # mmap with more than 28 bits (the default of some newer kernels); then run the tests
  # with ASLR off, if this environment allows it.
  rnd_bits="$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)"
  if [ "${rnd_bits}" -gt 28 ] && setarch "$(uname -m)" -R true 2>/dev/null; then
    echo "[test.sh] vm.mmap_rnd_bits=${rnd_bits}: running the TSan tests with ASLR off"
    ctest_prefix+=(setarch "$(uname -m)" -R)
  fi
  run_ctest build-tsan -L unit
  ctest_prefix=()
  echo "[test.sh] build-tsan/ took $(( SECONDS - step_start )) s"
fi

# ---------------------------------------------------------------------------------------
section "4/4 source checks: Clang -Wthread-safety and clang-format over lib/ and daemon/"
step_start="${SECONDS}"
current_step="source checks"
check_rc=0
/usr/bin/python3 scripts/check_sources.py build --jobs "${JOBS}" || check_rc=$?
if [ "${check_rc}" -ne 0 ]; then
  problems+=("source checks failed (exit ${check_rc}): scripts/check_sources.py build")
fi
echo "[test.sh] source checks took $(( SECONDS - step_start )) s"

current_step="done"
