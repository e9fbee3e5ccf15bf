#!/usr/bin/env bash
# Checks that the libraries the build needs are visible to pkg-config. When
# one is missing it runs scripts/install-deps.sh as root, and otherwise
# prints the exact command to run and fails, before any compiler error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
modules=(libmicrohttpd libcurl jansson libfyaml lmdb libcrypto openblas libutf8proc libseccomp cmocka)

missing=()
if ! command -v cc >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1 ||
   ! command -v cmake >/dev/null 2>&1; then
  missing=(cc pkg-config cmake)
else
  for m in "${modules[@]}"; do
    pkg-config --exists "$m" || missing+=("$m")
  done
fi
if [ "${1-}" = "--with-tools" ]; then
  for t in node npm curl; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
fi
install_args=()
if [ "${1-}" = "--bench" ]; then
  install_args=(--bench)
  for t in wrk nginx python3 hyperfine; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 || missing+=(python3-torch python3-numpy)
  [ -d /usr/lib/x86_64-linux-gnu/openblas-openmp ] || [ -d /usr/lib/aarch64-linux-gnu/openblas-openmp ] ||
    missing+=(libopenblas0-openmp)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "check-deps: missing: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  echo "check-deps: installing with $here/install-deps.sh" >&2
  exec "$here/install-deps.sh" "${install_args[@]}"
fi
echo "check-deps: run this once as root, then retry:" >&2
echo "  sudo $here/install-deps.sh ${install_args[*]}" >&2
exit 1
