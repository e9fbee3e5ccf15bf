#!/bin/sh
# Checks the CUDA encoder on a machine with an NVIDIA GPU, as one command
# run from the repository root. It builds with CUDA and compares cuda:0 with
# the CPU within 1e-4, on the bert-tiny fixture and on a MiniLM-shaped model
# with random weights. Then it times one 32-sentence batch on each.
# Exits non-zero on a mismatch, and also when no GPU is found (77).
set -eu

build=${BUILD_DIR:-build-cuda}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAN_CUDA=ON -DAN_E2E=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target test_embed_cuda test_embed_device bench_embed_cuda

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$build/test_embed_device"
"$build/test_embed_cuda"
"$build/bench_embed_cuda"
