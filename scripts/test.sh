#!/usr/bin/env bash
# Runs every test: the native GoogleTest suite (ctest) and the C# NUnit suite, on the CPU backend,
# plus the GPU tests when a CUDA build and an SM90 GPU are present (they skip, with the reason
# printed, otherwise). Ends with one line "N passed, N failed, N skipped" and fails on any failure.
#   scripts/test.sh [preset]     default: cpu, or auto where nvcc exists
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh" || exit 1

preset="${1:-}"
if [ -z "$preset" ]; then
  if command -v nvcc >/dev/null 2>&1; then preset=auto; else preset=cpu; fi
fi
"$root/scripts/build.sh" "$preset" || exit 1

logs="$root/build/$preset/test-logs"
mkdir -p "$logs"

echo "== native tests (ctest, build/$preset)"
ctest --test-dir "build/$preset" --output-on-failure -j "$(nproc)" 2>&1 | tee "$logs/ctest.log"
native_rc=${PIPESTATUS[0]}
gpu_tests="build/$preset/tests/native/megamoe_gpu_tests"
if [ -x "$gpu_tests" ]; then
  # ctest lists skipped tests without their output; say once why the GPU tests skipped.
  reason=$("$gpu_tests" 2>&1 | grep -m1 -o "CUDA backend unavailable.*" || true)
  [ -n "$reason" ] && echo "native GPU tests skipped because: $reason"
fi

echo "== managed tests (NUnit)"
dotnet test "$root/tests/managed/MegaMoe.Tests/MegaMoe.Tests.csproj" -c Release \
  -p:MegaMoeNativeDir="$root/build/$preset/native" --logger "trx;LogFileName=managed.trx" \
  --results-directory "$logs" 2>&1 | tee "$logs/dotnet.log"
managed_rc=${PIPESTATUS[0]}

python3 "$root/scripts/summarize_tests.py" "$logs/ctest.log" "$logs/managed.trx"
summary_rc=$?

if [ "$native_rc" -ne 0 ] || [ "$managed_rc" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then
  echo "tests FAILED (ctest exit $native_rc, dotnet exit $managed_rc)" >&2
  exit 1
fi
