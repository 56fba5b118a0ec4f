#!/usr/bin/env bash
# The GPU-machine half of the one GPU workflow (scripts/gpu_pack.sh, run first on the development
# machine, puts CUTLASS and the .NET test host in .device/, which the device tool carries): configure
# (ninja, sm_90a only, Release, CUDA backend ON), build with every core, run the CPU, GPU and C#
# suites, optionally compute-sanitizer, the benchmarks and an A/B against other trees, and print
# a summary table last. Logs and the benchmark JSON go to $OUT (or build/gpu-out when OUT is unset):
# summary.txt, build.log (with the ptxas -v register/spill report), tests-cpu.log, tests-gpu.log,
# sanitize.log, bench.log, the JSON, tests-dotnet.log, bench-ab.log, ptxas.txt (the device tool
# returns 8 files: narrow GPU_RUN_STAGES accordingly).
#
# Environment:
#   OUT                  where logs go (the device tool returns files from there)
#   GPU_RUN_STAGES       space-separated subset of "build cpu gpu sanitize bench baseline profile dotnet"
#                        (default: "build cpu gpu bench dotnet")
#   GPU_RUN_BENCH_ARGS   extra arguments for megamoe_bench (e.g. "--filter dense --reps 10")
#   GPU_RUN_GTEST_FILTER gtest filter for the GPU suite (default: all)
#   GPU_RUN_GPU_TIMEOUT  seconds the GPU suite may run (default 300)
#   GPU_RUN_PROFILE_FILTER  bench shape profiled by ncu in stage "profile" (default dense/m4096_n4096_k7168)
#   GPU_RUN_PROFILE_NCU  ncu options of stage "profile" (default: one gemm_kernel launch after the
#                        warm-ups, SpeedOfLight / workload / warp-state / occupancy sections)
#   MEGAMOE_DOTNET_DIR   the .NET carry scripts/gpu_pack.sh filled (default .device/dotnet; stage "dotnet")
#   MEGAMOE_TEST_FILTER  test filter of the managed suite (stage "dotnet"; default: every test)
#   MEGAMOE_COMMIT       commit recorded in the JSON
#   GPU_RUN_BASELINE_DIR another source tree benchmarked against this one (stage "baseline")
#   GPU_RUN_AB_PATCHES   space-separated patch files, each applied to a copy of this tree and benchmarked
#                        against it (stage "baseline"): `git diff -R <commit>` turns the tree into that
#                        commit, a diagnostic change into an experiment; the file name (less .patch)
#                        names it ("this" and "baseline" are taken)
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

# CUTLASS travels compressed (scripts/gpu_pack.sh puts include/cute and include/cutlass of a pinned
# release into .device/cutlass.tar.xz); a checkout that has third_party/cutlass uses that.
if [ ! -f third_party/cutlass/include/cutlass/cutlass.h ] && [ -f .device/cutlass.tar.xz ]; then
  mkdir -p third_party && tar -xJf .device/cutlass.tar.xz -C third_party
fi

{
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 || true
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
  echo "cores: $JOBS"
  echo "nccl: $(ls /usr/include/nccl.h /usr/local/include/nccl.h 2>/dev/null | head -1) $(grep -hE '^#define NCCL_(MAJOR|MINOR|PATCH)' /usr/include/nccl.h 2>/dev/null | awk '{printf "%s=%s ", $2, $3}')"
  echo "libnccl: $(ldconfig -p 2>/dev/null | grep -o '/[^ ]*libnccl.so[^ ]*' | head -2 | tr '\n' ' ')"
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
  add build "$(status_of $rc)" "$(( $(date +%s) - t0 )) s; C7518 (serialized wgmma) warnings: $(grep -c C7518 "$OUT/build.log"); kernels with spills: $(grep -E "bytes spill (stores|loads)" "$OUT/build.log" | grep -vc " 0 bytes spill stores, 0 bytes spill loads")"
  if [ $rc -ne 0 ]; then
    grep -E "error|Error" "$OUT/build.log" | head -40
    STAGES=""
  fi
fi

# Stage "baseline": the same benchmark built from other trees (GPU_RUN_BASELINE_DIR, and a copy of this
# tree per patch of GPU_RUN_AB_PATCHES), then benchmarked alternately with this tree's in one lease, so
# a change is judged against the card's run-to-run spread (bench-ab.log); ptxas.txt compares each
# build's registers and spills with this tree's kernel by kernel. The variants build in the background
# from here on, while the test stages use the GPU; the bench stages wait for them, so no timing runs
# beside a compiler.
declare -a VARIANTS=()
VARIANTS_PID=""
variant_dir() { echo "$ROOT/build/gpu-ab-$1"; }
variant_build() {  # name, source tree; appends to the variant's log
  local bdir
  bdir=$(variant_dir "$1")
  cmake -S "$2" -B "$bdir" -G Ninja -DMEGAMOE_CUDA=ON -DCUTLASS_DIR="$ROOT/third_party/cutlass" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DMEGAMOE_BUILD_TESTS=OFF >>"$bdir.log" 2>&1 &&
    timeout 400 cmake --build "$bdir" -j "$JOBS" --target megamoe_bench >>"$bdir.log" 2>&1
}
wait_for_variants() { if [ -n "$VARIANTS_PID" ]; then wait "$VARIANTS_PID" || true; VARIANTS_PID=""; fi; }
if want baseline; then
  [ -n "${GPU_RUN_BASELINE_DIR:-}" ] && VARIANTS+=(baseline)
  for patch in ${GPU_RUN_AB_PATCHES:-}; do
    name=$(basename "$patch" .patch)
    case " this baseline ${VARIANTS[*]} " in
      *" $name "*) echo "GPU_RUN_AB_PATCHES: '$name' is taken; rename $patch" >&2; exit 2 ;;
    esac
    VARIANTS+=("$name")
  done
  if [ ${#VARIANTS[@]} -gt 0 ]; then
    mkdir -p "$ROOT/build"
    (
      for name in "${VARIANTS[@]}"; do : >"$(variant_dir "$name").log"; done
      [ -n "${GPU_RUN_BASELINE_DIR:-}" ] && variant_build baseline "$GPU_RUN_BASELINE_DIR"
      for patch in ${GPU_RUN_AB_PATCHES:-}; do
        name=$(basename "$patch" .patch)
        src=${TMPDIR:-/tmp}/megamoe-variant-$name
        log=$(variant_dir "$name").log
        if [ ! -f "$patch" ]; then
          echo "patch $patch: no such file" >>"$log"
          continue
        fi
        rm -rf "$src" && mkdir -p "$src"
        tar -C "$ROOT" -c --exclude=./build --exclude=./.device --exclude=./third_party --exclude=./.git . | tar -x -C "$src"
        # patch -d enters the directory first: the patch's path must be absolute.
        if patch -p1 --batch -d "$src" -i "$(realpath "$patch")" >>"$log" 2>&1; then
          variant_build "$name" "$src"
        else
          echo "patch $patch does not apply to this tree" >>"$log"
        fi
      done
    ) &
    VARIANTS_PID=$!
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
  wait_for_variants
  t0=$(date +%s)
  bench_bin="$BUILD/bench/megamoe_bench"
  [ -x "$bench_bin" ] || bench_bin="$BUILD/megamoe_bench"
  # shellcheck disable=SC2086
  timeout "${GPU_RUN_BENCH_TIMEOUT:-300}" "$bench_bin" --out "$OUT" ${GPU_RUN_BENCH_ARGS:-} >"$OUT/bench.log" 2>&1
  rc=$?
  add bench "$(status_of $rc)" "$(ls "$OUT"/*.json 2>/dev/null | xargs -n1 basename 2>/dev/null | tr '\n' ' ')"
fi

if want baseline; then
  t0=$(date +%s)
  rc=0
  if [ ${#VARIANTS[@]} -eq 0 ]; then
    rc=2
    echo "stage baseline: set GPU_RUN_BASELINE_DIR or GPU_RUN_AB_PATCHES" >>"$OUT/bench-ab.log"
  else
    wait_for_variants
    : >"$OUT/ptxas.txt"
    for name in "${VARIANTS[@]}"; do
      echo "== ptxas: this tree vs $name" >>"$OUT/ptxas.txt"
      python3 scripts/ptxas_report.py "$OUT/build.log" "$(variant_dir "$name").log" >>"$OUT/ptxas.txt" 2>&1
    done
    for round in 1 2; do
      for side in "${VARIANTS[@]}" this; do
        bin="$(variant_dir "$side")/bench/megamoe_bench"
        [ "$side" = this ] && bin="$BUILD/bench/megamoe_bench"
        echo "== round $round: $side" >>"$OUT/bench-ab.log"
        if [ ! -x "$bin" ]; then
          if [ "$side" = this ]; then echo "not built: run stage build" >>"$OUT/bench-ab.log"; else echo "not built: see $(variant_dir "$side").log" >>"$OUT/bench-ab.log"; fi
          tail -5 "$(variant_dir "$side").log" >>"$OUT/bench-ab.log" 2>/dev/null
          rc=1
          continue
        fi
        # shellcheck disable=SC2086
        timeout "${GPU_RUN_BENCH_TIMEOUT:-300}" "$bin" --out "$ROOT/build/json-ab-$side" ${GPU_RUN_BENCH_ARGS:-} >>"$OUT/bench-ab.log" 2>&1 || rc=$?
      done
    done
  fi
  add baseline "$(status_of $rc)" "$(( $(date +%s) - t0 )) s (${VARIANTS[*]:-none} vs this); spill changes: $(grep -c CHANGED "$OUT/ptxas.txt" 2>/dev/null)"
fi

if want profile; then
  wait_for_variants
  # Nsight Compute on one GEMM launch (after the warm-ups); its sections go into bench.log, since
  # the device tool returns at most 8 files.
  target=${GPU_RUN_PROFILE_FILTER:-dense/m4096_n4096_k7168}
  echo "== ncu: $target" >>"$OUT/bench.log"
  ncu_args=${GPU_RUN_PROFILE_NCU:-"--kernel-name gemm_kernel --launch-skip 3 --launch-count 1 --section SpeedOfLight \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy"}
  # shellcheck disable=SC2086
  timeout 240 ncu $ncu_args "$BUILD/bench/megamoe_bench" --filter "$target" --reps 1 >>"$OUT/bench.log" 2>&1
  rc=$?
  add profile "$(status_of $rc)" "ncu of $target in bench.log"
fi

# ------------------------------------------------------------------------------------------------
# Managed tests: the .NET runtime, the self-hosted NUnit executable and the CLI that scripts/gpu_pack.sh
# put in .device/dotnet run against this build's libmegamoe.so; then a smoke run of the CLI on CUDA
# (small shapes, seconds). MEGAMOE_REQUIRE_CUDA=1 turns a missing CUDA backend into failures instead
# of ignored tests, and while MEGAMOE_NATIVE_PATH is set the loader never falls back to the CPU-only
# copy the build put beside the tests.
dotnet_suite() {
  local carry=$1 work=${TMPDIR:-/tmp}/megamoe-dotnet
  rm -rf "$work" && mkdir -p "$work/dotnet" "$work/tests" "$work/cli"
  tar -xJf "$carry/dotnet-runtime.tar.xz" -C "$work/dotnet" && tar -xJf "$carry/tests.tar.xz" -C "$work/tests" &&
    tar -xJf "$carry/cli.tar.xz" -C "$work/cli" || return 2
  export DOTNET_ROOT="$work/dotnet" DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 MEGAMOE_REQUIRE_CUDA=1
  export MEGAMOE_NATIVE_PATH="$BUILD/native/libmegamoe.so" LD_LIBRARY_PATH="$BUILD/native:${LD_LIBRARY_PATH:-}"
  local args=(--output Detailed --show-stdout All) rc=0 step
  [ -n "${MEGAMOE_TEST_FILTER:-}" ] && args+=(--filter "$MEGAMOE_TEST_FILTER")
  "$work/dotnet/dotnet" "$work/tests/net10.0/MegaMoe.Tests.dll" "${args[@]}" || rc=1
  local shape=(--model custom --experts 8 --top-k 2 --hidden 512 --intermediate 256)
  for step in "info --json" "verify --backend cuda ${shape[*]} --tokens 1,16,64" \
              "run --backend cuda ${shape[*]} --tokens 64 --runs 3 --expert-specialization both"; do
    echo "== megamoe $step"
    # shellcheck disable=SC2086
    "$work/dotnet/dotnet" "$work/cli/megamoe-cli/MegaMoe.Cli.dll" $step || { echo "== megamoe $step: FAILED"; rc=1; }
  done
  return $rc
}
if want dotnet; then
  carry=${MEGAMOE_DOTNET_DIR:-$ROOT/.device/dotnet}
  if [ -f "$carry/tests.tar.xz" ]; then
    rc=0
    (timeout 300 bash -c "$(declare -f dotnet_suite); BUILD='$BUILD' MEGAMOE_TEST_FILTER='${MEGAMOE_TEST_FILTER:-}' dotnet_suite '$carry'") \
      >"$OUT/tests-dotnet.log" 2>&1 || rc=$?
    add "tests c#" "$(status_of $rc)" "$(grep -E '^ *(total|failed|succeeded|skipped):' "$OUT/tests-dotnet.log" | tr -s ' \n' ' ')"
  else
    add "tests c#" "skipped" "no .NET carry in $carry (run scripts/gpu_pack.sh first)"
  fi
fi

# ------------------------------------------------------------------------------------------------
echo
echo "== GPU tests (per test)"
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|max [0-9]+ ulp|Failure|beyond" "$OUT/tests-gpu.log" 2>/dev/null | tail -70
echo
echo "== benchmarks"
grep -E "^(dense|contiguous|masked|quant|transform|routed|es|moe|host)/|geometric mean" "$OUT/bench.log" 2>/dev/null
echo
echo "== summary"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$OUT/summary.txt"
