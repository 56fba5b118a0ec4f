#!/usr/bin/env bash
# Runs on the GPU machine (scripts/gpu_run.sh's dotnet stage, or by hand): unpacks the runtime and the test
# executable that pack.sh put beside this script, then runs the managed suite against the CUDA build of
# libmegamoe.so named by MEGAMOE_NATIVE_PATH.
#   MEGAMOE_TEST_FILTER  test filter (default: every test; e.g. "TestCategory=Gpu")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${TMPDIR:-/tmp}/megamoe-dotnet
rm -rf "$work"
mkdir -p "$work/dotnet" "$work/tests"
tar -xJf "$here/dotnet-runtime.tar.xz" -C "$work/dotnet"
tar -xJf "$here/tests.tar.xz" -C "$work/tests"

export DOTNET_ROOT="$work/dotnet" DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
export MEGAMOE_NATIVE_PATH="${MEGAMOE_NATIVE_PATH:?set MEGAMOE_NATIVE_PATH to the CUDA build of libmegamoe.so}"
# While MEGAMOE_NATIVE_PATH is set the loader uses that file or fails naming it (e.g. libcuda.so.1 missing); it never
# falls back to the CPU-only copy that the build put beside the tests, so that copy can stay.
# A missing CUDA backend must fail the GPU tests here rather than turn them into Ignored.
export MEGAMOE_REQUIRE_CUDA=1

args=(--output Detailed --show-stdout All)
if [ -n "${MEGAMOE_TEST_FILTER:-}" ]; then
  args+=(--filter "$MEGAMOE_TEST_FILTER")
fi
exec "$work/dotnet/dotnet" "$work/tests/net10.0/MegaMoe.Tests.dll" "${args[@]}"
