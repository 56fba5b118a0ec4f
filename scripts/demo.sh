#!/usr/bin/env bash
# The main job: builds the library (with the CUDA backend where nvcc and CUTLASS are found) and runs a
# DeepSeek-shaped MoE layer on random weights on the best available backend, printing time and the
# error against float64. Arguments go to the demo (--help lists them).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
preset=cpu
if command -v nvcc >/dev/null 2>&1; then preset=auto; fi
"$root/scripts/build.sh" "$preset"
export MEGAMOE_NATIVE_PATH="$root/build/$preset/native"
exec dotnet run --project "$root/managed/MegaMoe.Demo/MegaMoe.Demo.csproj" -c Release -- "$@"
