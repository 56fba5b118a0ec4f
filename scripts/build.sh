#!/usr/bin/env bash
# Configures and builds the native library (and its tests) with CMake + Ninja.
#   scripts/build.sh [preset]     preset: cpu (default where nvcc is absent) | auto | cuda | asan | debug
# `auto` builds the CUDA backend when nvcc and CUTLASS (third_party/cutlass or -DCUTLASS_DIR) are found.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
preset="${1:-}"
if [ -z "$preset" ]; then
  if command -v nvcc >/dev/null 2>&1; then preset=auto; else preset=cpu; fi
fi
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
echo "build: native library in build/$preset/native"
