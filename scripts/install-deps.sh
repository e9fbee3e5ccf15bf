#!/usr/bin/env bash
# Installs AgentNet's build, test and benchmark dependencies from Debian 12
# packages. Run as root (or through sudo). Idempotent.
#
# --bench also installs what the embedding benchmark (bench/embed/run.sh)
# compares against: Debian's PyTorch and the OpenMP build of OpenBLAS. They
# are large and only the benchmark uses them, so the default leaves them out.
set -euo pipefail

with_bench=0
for arg in "$@"; do
  case $arg in
    --bench) with_bench=1 ;;
    *) echo "install-deps: unknown option '$arg'; usage: $0 [--bench]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root: sudo $0" >&2
  exit 1
fi

packages=(
  build-essential cmake pkg-config git curl ca-certificates
  libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libfyaml-dev
  liblmdb-dev lmdb-utils libsqlite3-dev libssl-dev libseccomp-dev
  libutf8proc-dev libopenblas-dev libcmocka-dev
  wrk nginx-light python3
)
if [ "$with_bench" = 1 ]; then
  packages+=(python3-torch python3-numpy libopenblas0-openmp bubblewrap hyperfine)
fi
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
