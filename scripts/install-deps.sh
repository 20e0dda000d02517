#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of ringcache from Debian 12
# packages. Idempotent; run as root (or through sudo) on a fresh machine.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (apt-get needs it), e.g. sudo $0" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # core library
  libxxhash-dev
  # daemon, protocol, client
  libasio-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libspdlog-dev libcli11-dev
  # TLS: the node checks its certificate files with OpenSSL; the tests make certificates
  # with the openssl command
  libssl-dev openssl
  # tests
  catch2 python3 python3-grpcio python3-protobuf python3-redis curl procps
  # Redis-protocol tests (differential run, real clients) and benchmark baselines
  redis-server redis-tools
  # a second language's Redis client (tests/resp/test_node_redis.py)
  nodejs node-redis
  # source checks (scripts/check_sources.py): Clang's -Wthread-safety, clang-format
  clang clang-format
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
