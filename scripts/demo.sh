#!/usr/bin/env bash
# The main job: builds the library (with the CUDA backend where nvcc and CUTLASS are found) and runs
# `megamoe run`, by default a DeepSeek-V3-shaped MoE layer (32 experts) on random weights on the best
# available backend, printing time and the error against float64. Arguments go to `megamoe run`
# (--help lists them); the exit code is its own (docs/CLI.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
preset=cpu
if command -v nvcc >/dev/null 2>&1; then preset=auto; fi
"$root/scripts/build.sh" "$preset"
export MEGAMOE_NATIVE_PATH="$root/build/$preset/native"
exec dotnet run --project "$root/managed/MegaMoe.Cli/MegaMoe.Cli.csproj" -c Release -- run "$@"
