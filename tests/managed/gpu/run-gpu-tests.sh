#!/usr/bin/env bash
# Runs on the GPU machine (scripts/gpu_run.sh's dotnet stage, or by hand): unpacks the runtime, the test executable
# and the megamoe CLI that pack.sh put beside this script, runs the managed suite against the CUDA build of
# libmegamoe.so named by MEGAMOE_NATIVE_PATH, then a smoke run of the CLI on the CUDA backend (small shapes, seconds):
# `megamoe info --json`, `megamoe verify --backend cuda` and `megamoe run --backend cuda --expert-specialization both`.
# Every step runs and prints its output; the script fails if the suite or any CLI command exits nonzero. The last
# line sums it up (gpu_run.sh puts it in its summary).
#   MEGAMOE_TEST_FILTER         test filter (default: every test; e.g. "TestCategory=Gpu")
#   MEGAMOE_CLI_SMOKE_BACKEND   backend of the CLI smoke run (default cuda; cpu tries the script where there is no GPU)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${TMPDIR:-/tmp}/megamoe-dotnet
rm -rf "$work"
mkdir -p "$work/dotnet" "$work/tests" "$work/cli"
tar -xJf "$here/dotnet-runtime.tar.xz" -C "$work/dotnet" || exit 1
tar -xJf "$here/tests.tar.xz" -C "$work/tests" || exit 1
tar -xJf "$here/cli.tar.xz" -C "$work/cli" || exit 1

export DOTNET_ROOT="$work/dotnet" DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
export MEGAMOE_NATIVE_PATH="${MEGAMOE_NATIVE_PATH:?set MEGAMOE_NATIVE_PATH to the CUDA build of libmegamoe.so}"
# While MEGAMOE_NATIVE_PATH is set the loader uses that file or fails naming it (e.g. libcuda.so.1 missing); it never
# falls back to the CPU-only copy that the build put beside the tests (and the CLI), so that copy can stay.
# A missing CUDA backend must fail the GPU tests here rather than turn them into Ignored.
export MEGAMOE_REQUIRE_CUDA=1

args=(--output Detailed --show-stdout All)
if [ -n "${MEGAMOE_TEST_FILTER:-}" ]; then
  args+=(--filter "$MEGAMOE_TEST_FILTER")
fi
"$work/dotnet/dotnet" "$work/tests/net10.0/MegaMoe.Tests.dll" "${args[@]}" 2>&1 | tee "$work/tests.log"
tests_rc=${PIPESTATUS[0]}
# Microsoft.Testing.Platform's closing block: "total: N", "failed: N", "succeeded: N", "skipped: N".
counts=$(awk '$1 ~ /^(total|failed|succeeded|skipped):$/ { printf "%s%s %s", sep, $1, $2; sep = " " }' "$work/tests.log")

# --- megamoe CLI smoke run -------------------------------------------------------------------------------------
backend=${MEGAMOE_CLI_SMOKE_BACKEND:-cuda}
shape=(--model custom --experts 8 --top-k 2 --hidden 512 --intermediate 256)
cli_rc=0
cli_steps=()
# Runs the CLI through the unpacked muxer (no apphost lookup, no installed .NET needed) and records its exit status.
smoke() {
  local name=$1 rc=0
  shift
  echo
  echo "== megamoe $*"
  "$work/dotnet/dotnet" "$work/cli/megamoe-cli/MegaMoe.Cli.dll" "$@" || rc=$?
  echo "== megamoe $name: exit $rc"
  cli_steps+=("$name $([ "$rc" -eq 0 ] && echo ok || echo "FAILED($rc)")")
  [ "$rc" -eq 0 ] || cli_rc=1
}
smoke info info --json
smoke verify verify --backend "$backend" "${shape[@]}" --tokens 1,16,64
smoke run run --backend "$backend" "${shape[@]}" --tokens 64 --runs 3 --expert-specialization both

echo
rc=0
if [ "$tests_rc" -ne 0 ] || [ "$cli_rc" -ne 0 ]; then rc=1; fi
steps=$(printf '%s, ' "${cli_steps[@]}")
echo "managed tests exit $tests_rc${counts:+ ($counts)}; megamoe CLI on $backend: ${steps%, }"
exit "$rc"
