#!/usr/bin/env bash
# The one script run on the GPU machine: configure (ninja, sm_90a only, Release, CUDA backend ON),
# build with every core, run the CPU and GPU test suites, optionally compute-sanitizer, the
# benchmarks, and print a summary table last. Logs and the benchmark JSON go to $OUT (or
# build/gpu-out when OUT is unset); at most 8 files: summary.txt, build.log (with the ptxas -v
# register/spill report), tests-cpu.log, tests-gpu.log, sanitize.log, bench.log, the JSON,
# tests-dotnet.log.
#
# Environment:
#   OUT                  where logs go (the device tool returns files from there)
#   GPU_RUN_STAGES       space-separated subset of "build cpu gpu sanitize bench profile dotnet"
#                        (default: "build cpu gpu bench dotnet")
#   GPU_RUN_BENCH_ARGS   extra arguments for megamoe_bench (e.g. "--filter dense --reps 10")
#   GPU_RUN_GTEST_FILTER gtest filter for the GPU suite (default: all)
#   GPU_RUN_GPU_TIMEOUT  seconds the GPU suite may run (default 300)
#   GPU_RUN_PROFILE_FILTER  bench shape profiled by ncu in stage "profile" (default dense/m4096_n4096_k7168)
#   MEGAMOE_DOTNET_DIR   the folder tests/managed/gpu/pack.sh filled (managed tests; stage "dotnet")
#   MEGAMOE_COMMIT       commit recorded in the JSON
set -u
set -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/build/gpu-out}
mkdir -p "$OUT"
STAGES=${GPU_RUN_STAGES:-"build cpu gpu bench dotnet"}
BUILD=$ROOT/build/gpu
JOBS=$(nproc)
declare -a SUMMARY=()
status_of() { if [ "$1" -eq 0 ]; then echo ok; elif [ "$1" -eq 124 ]; then echo TIMEOUT; else echo "FAILED($1)"; fi; }
add() { SUMMARY+=("$(printf '%-12s %-12s %s' "$1" "$2" "$3")"); }
want() { [[ " $STAGES " == *" $1 "* ]]; }

{
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 || true
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
  echo "cores: $JOBS"
} | tee "$OUT/summary.txt"

# ------------------------------------------------------------------------------------------------
if want build; then
  t0=$(date +%s)
  cmake -S . -B "$BUILD" -G Ninja -DMEGAMOE_CUDA=ON -DCUTLASS_DIR="$ROOT/third_party/cutlass" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a >"$OUT/build.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    timeout 480 cmake --build "$BUILD" -j "$JOBS" -- -k 0 >>"$OUT/build.log" 2>&1
    rc=$?
  fi
  add build "$(status_of $rc)" "$(( $(date +%s) - t0 )) s"
  if [ $rc -ne 0 ]; then
    grep -E "error|Error" "$OUT/build.log" | head -40
    STAGES=""
  fi
fi

# ------------------------------------------------------------------------------------------------
if want cpu; then
  t0=$(date +%s)
  # The GoogleTest binaries are run directly (the tests ctest -L cpu / -L gpu lists) so the log keeps
  # each test's own output (ulp reports, tile names).
  timeout 300 "$BUILD/tests/native/megamoe_tests" >"$OUT/tests-cpu.log" 2>&1
  rc=$?
  add "tests cpu" "$(status_of $rc)" "$(grep -E '^\[  (PASSED|FAILED)  \]|tests? ran' "$OUT/tests-cpu.log" | tr '\n' ' ')"
fi

if want gpu; then
  t0=$(date +%s)
  timeout "${GPU_RUN_GPU_TIMEOUT:-300}" "$BUILD/tests/native/megamoe_gpu_tests" --gtest_filter="${GPU_RUN_GTEST_FILTER:-*}" >"$OUT/tests-gpu.log" 2>&1
  rc=$?
  add "tests gpu" "$(status_of $rc)" "$(grep -E '^\[  (PASSED|FAILED|SKIPPED)  \]|tests? ran' "$OUT/tests-gpu.log" | tr '\n' ' ') ($(( $(date +%s) - t0 )) s)"
fi

if want sanitize; then
  t0=$(date +%s)
  filter=${GPU_RUN_SANITIZE_FILTER:-"GpuBackend.*:GpuQuantize.*:GpuTransform.*:GpuGemm.DenseZeroRows:GpuGemm.Offsets"}
  rc=0
  for tool in memcheck racecheck synccheck; do
    echo "== compute-sanitizer --tool $tool" >>"$OUT/sanitize.log"
    # Two tile configurations keep it short: the 128x256 N-wave path and the multicast path.
    MEGAMOE_TEST_TILES=${GPU_RUN_SANITIZE_TILES:-"128x256x1,64x128x2"} timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$BUILD/tests/native/megamoe_gpu_tests" --gtest_filter="$filter" >>"$OUT/sanitize.log" 2>&1 || rc=$?
  done
  add sanitize "$(status_of $rc)" "$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize.log" | tr '\n' ' ')"
fi

# ------------------------------------------------------------------------------------------------
if want bench; then
  t0=$(date +%s)
  bench_bin="$BUILD/bench/megamoe_bench"
  [ -x "$bench_bin" ] || bench_bin="$BUILD/megamoe_bench"
  # shellcheck disable=SC2086
  timeout 240 "$bench_bin" --out "$OUT" ${GPU_RUN_BENCH_ARGS:-} >"$OUT/bench.log" 2>&1
  rc=$?
  add bench "$(status_of $rc)" "$(ls "$OUT"/*.json 2>/dev/null | xargs -n1 basename 2>/dev/null | tr '\n' ' ')"
fi

if want profile; then
  # Nsight Compute on one GEMM launch (after the warm-ups); its sections go into bench.log, since
  # the device tool returns at most 8 files.
  target=${GPU_RUN_PROFILE_FILTER:-dense/m4096_n4096_k7168}
  echo "== ncu: $target" >>"$OUT/bench.log"
  timeout 240 ncu --kernel-name gemm_kernel --launch-skip 3 --launch-count 1 --section SpeedOfLight \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
    "$BUILD/bench/megamoe_bench" --filter "$target" --reps 1 >>"$OUT/bench.log" 2>&1
  rc=$?
  add profile "$(status_of $rc)" "ncu of $target in bench.log"
fi

# ------------------------------------------------------------------------------------------------
# Managed tests: MEGAMOE_DOTNET_DIR is the folder tests/managed/gpu/pack.sh filled (the .NET runtime,
# the self-hosted NUnit executable and run-gpu-tests.sh); the whole suite runs against this build.
if want dotnet && [ -n "${MEGAMOE_DOTNET_DIR:-}" ]; then
  t0=$(date +%s)
  export DOTNET_ROOT="$MEGAMOE_DOTNET_DIR" PATH="$MEGAMOE_DOTNET_DIR:$PATH"
  export MEGAMOE_NATIVE_PATH="$BUILD/native/libmegamoe.so" LD_LIBRARY_PATH="$BUILD/native:${LD_LIBRARY_PATH:-}"
  rc=0
  if [ -x "$MEGAMOE_DOTNET_DIR/run-gpu-tests.sh" ]; then
    timeout 300 "$MEGAMOE_DOTNET_DIR/run-gpu-tests.sh" >"$OUT/tests-dotnet.log" 2>&1 || rc=$?
  else
    echo "MEGAMOE_DOTNET_DIR has no run-gpu-tests.sh; nothing run" >"$OUT/tests-dotnet.log"
    rc=2
  fi
  add "tests c#" "$(status_of $rc)" "$(tail -1 "$OUT/tests-dotnet.log")"
fi

# ------------------------------------------------------------------------------------------------
echo
echo "== GPU tests (per test)"
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|max [0-9]+ ulp|Failure|beyond" "$OUT/tests-gpu.log" 2>/dev/null | tail -70
echo
echo "== benchmarks"
grep -E "^(dense|contiguous|masked|quant|transform|routed|es|moe)/" "$OUT/bench.log" 2>/dev/null
echo
echo "== summary"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$OUT/summary.txt"
