#!/usr/bin/env bash
# Installs AgentNet's build, test and benchmark dependencies from Debian 12
# packages. Run as root (or through sudo). Idempotent.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root: sudo $0" >&2
  exit 1
fi

packages=(
  build-essential cmake pkg-config git curl ca-certificates
  libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libfyaml-dev
  liblmdb-dev lmdb-utils libsqlite3-dev libssl-dev libseccomp-dev
  libutf8proc-dev libopenblas-dev libcmocka-dev
  wrk nginx-light
)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
