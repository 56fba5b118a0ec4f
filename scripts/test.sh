#!/usr/bin/env bash
# Runs every test: the native GoogleTest suite (ctest), the C# NUnit suites (facade, CLI,
# checkpoints, the NuGet package consumer), on the CPU backend,
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
# Results of an earlier run must not be counted if a suite fails to write its own.
rm -f "$logs/ctest.log" "$logs/managed.trx" "$logs/cli.trx" "$logs/checkpoints.trx" "$logs/package.trx"

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

# The megamoe CLI tests, the MegaMoe.Checkpoints tests, then the NuGet package (packed with the
# native library just built, restored by a consumer project from a local folder).
echo "== CLI tests (NUnit)"
dotnet test "$root/tests/managed/MegaMoe.Cli.Tests/MegaMoe.Cli.Tests.csproj" -c Release \
  -p:MegaMoeNativeDir="$root/build/$preset/native" --filter "TestCategory!=Aot" \
  --logger "trx;LogFileName=cli.trx" --results-directory "$logs" 2>&1 | tee "$logs/dotnet-cli.log"
cli_rc=${PIPESTATUS[0]}

echo "== checkpoint tests (NUnit)"
dotnet test "$root/tests/managed/MegaMoe.Checkpoints.Tests/MegaMoe.Checkpoints.Tests.csproj" -c Release \
  -p:MegaMoeNativeDir="$root/build/$preset/native" \
  --logger "trx;LogFileName=checkpoints.trx" --results-directory "$logs" 2>&1 | tee "$logs/dotnet-checkpoints.log"
checkpoints_rc=${PIPESTATUS[0]}

echo "== NuGet package: dotnet pack, then a consumer project restores it"
packages="$root/build/$preset/packages"
rm -rf "$packages" "$root/tests/managed/MegaMoe.PackageConsumer/obj/packages"
dotnet pack "$root/managed/MegaMoe/MegaMoe.csproj" -c Release -p:MegaMoeNativeDir="$root/build/$preset/native" \
  -o "$packages" 2>&1 | tee "$logs/pack.log"
pack_rc=${PIPESTATUS[0]}
# A package that packs with warnings (missing metadata, a file left out) is not releasable.
if [ "$pack_rc" -eq 0 ] && grep -q ": warning " "$logs/pack.log"; then
  echo "dotnet pack reported warnings (above); they fail the run" >&2
  pack_rc=1
fi
(unset MEGAMOE_NATIVE_PATH
 dotnet test "$root/tests/managed/MegaMoe.PackageConsumer/MegaMoe.PackageConsumer.csproj" -c Release \
   -p:MegaMoePackageSource="$packages" --logger "trx;LogFileName=package.trx" --results-directory "$logs") 2>&1 \
  | tee "$logs/dotnet-package.log"
package_rc=${PIPESTATUS[0]}

python3 "$root/scripts/summarize_tests.py" "$logs/ctest.log" "$logs/managed.trx" "$logs/cli.trx" \
  "$logs/checkpoints.trx" "$logs/package.trx"
summary_rc=$?
if [ "$native_rc" -ne 0 ] || [ "$managed_rc" -ne 0 ] || [ "$cli_rc" -ne 0 ] || [ "$checkpoints_rc" -ne 0 ] ||
   [ "$pack_rc" -ne 0 ] || [ "$package_rc" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then
  echo "tests FAILED (ctest exit $native_rc, dotnet exit $managed_rc, CLI tests exit $cli_rc," \
       "checkpoint tests exit $checkpoints_rc, pack exit $pack_rc, package consumer exit $package_rc)" >&2
  exit 1
fi
