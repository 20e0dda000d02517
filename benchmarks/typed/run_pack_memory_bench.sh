#!/usr/bin/env bash
# Memory per element of hashes, lists or sets: ringcache's typed values
# (pack_memory_bench, in process) against redis-server holding the same data (loaded with
# redis-cli --pipe; INFO's used_memory and used_memory_rss), alternated over --rounds
# rounds. Prints each round and the ratios ringcache / Redis with their spread
# (docs/benchmarks.md). --hashes is the number of keys, --fields the elements per key.
#
#   benchmarks/typed/run_pack_memory_bench.sh --bench build/benchmarks/typed/pack_memory_bench \
#       [--family hash|list|set] [--hashes 100000] [--fields 10] [--rounds 3]
set -euo pipefail

bench="" hashes=100000 fields=10 rounds=3 family=hash
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --family) family="$2"; shift 2 ;;
    --hashes) hashes="$2"; shift 2 ;;
    --fields) fields="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "${bench}" ] || { echo "--bench must name the pack_memory_bench binary" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is not installed (scripts/install-deps.sh)" >&2; exit 2; }

dir="$(mktemp -d /tmp/pack-memory.XXXXXX)"
redis_pid=""
cleanup() {
  if [ -n "${redis_pid}" ]; then kill "${redis_pid}" 2>/dev/null || true; wait "${redis_pid}" 2>/dev/null || true; fi
  rm -rf "${dir}"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
info_field() { redis-cli -p "$1" info memory | tr -d '\r' | sed -n "s/^$2://p"; }

"${bench}" --family "${family}" --emit-redis --hashes "${hashes}" --fields "${fields}" > "${dir}/load.resp"
n=$((hashes * fields))
ours=() redis_used=() redis_rss=()
for r in $(seq 1 "${rounds}"); do
  line="$("${bench}" --family "${family}" --hashes "${hashes}" --fields "${fields}")"
  resident="$(sed -n 's/.*per element \([0-9.]*\) B resident.*/\1/p' <<<"${line}")"
  ours+=("${resident}")

  port="$(free_port)"
  redis-server --port "${port}" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --dir "${dir}" >"${dir}/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "${port}" ping >/dev/null 2>&1 && break; sleep 0.05; done
  used0="$(info_field "${port}" used_memory)"
  rss0="$(info_field "${port}" used_memory_rss)"
  redis-cli -p "${port}" --pipe < "${dir}/load.resp" >/dev/null
  used1="$(info_field "${port}" used_memory)"
  rss1="$(info_field "${port}" used_memory_rss)"
  encoding="$(redis-cli -p "${port}" object encoding hash:00000000)"
  kill "${redis_pid}"; wait "${redis_pid}" 2>/dev/null || true; redis_pid=""
  ru="$(awk -v a="${used0}" -v b="${used1}" -v n="${n}" 'BEGIN{printf "%.1f", (b-a)/n}')"
  rr="$(awk -v a="${rss0}" -v b="${rss1}" -v n="${n}" 'BEGIN{printf "%.1f", (b-a)/n}')"
  redis_used+=("${ru}")
  redis_rss+=("${rr}")
  echo "round ${r}: ${line#ringcache: }"
  echo "         redis-server $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p') (${encoding}): per element ${ru} B used_memory, ${rr} B resident"
done

ratios() {  # ratios ours[i] / theirs[i]: "median (min .. max)"
  local -n a=$1 b=$2
  local i out=()
  for i in "${!a[@]}"; do out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN{printf "%.3f", x/y}')"); done
  printf '%s\n' "${out[@]}" | sort -n | awk '{v[NR]=$1} END{printf "%s (%s .. %s)", v[int((NR+1)/2)], v[1], v[NR]}'
}
echo "ringcache resident / Redis used_memory per element: $(ratios ours redis_used)"
echo "ringcache resident / Redis resident per element:    $(ratios ours redis_rss)"
