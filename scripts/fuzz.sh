#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, preset "fuzz": clang, ASan + UBSan) and runs each for a
# bounded time, starting from the committed corpus. Prints one line per target (executions, time,
# coverage, crashes) and fails if any target crashed; reproducers are left in build/fuzz/artifacts/
# (copy them to tests/fuzz/regressions/<target>/ once the bug is fixed). Without a clang that can
# link libFuzzer, says why and exits 0, so CI on a machine without clang skips instead of failing.
#   scripts/fuzz.sh [--seconds N] [--runs N] [--max-len N] [--merge | --minimize] [target...]
#     --seconds N  time per target (default 60)
#     --runs N     stop a target after N executions (default: no limit)
#     --max-len N  longest input, in bytes (default 128: a few calls per input, so executions stay fast)
#     --jobs N     targets run at once (default: nproc)
#     --merge      add the inputs that reach new edges to tests/fuzz/corpus/<target>/
#     --minimize   no fuzzing: replace tests/fuzz/corpus/<target>/ by the subset that libFuzzer's merge
#                  keeps to reach the same edges; prints inputs and coverage before and after
#     target       handles transforms gemm routed moe ep (default: all)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds=60 runs=-1 max_len=128 merge=0 minimize=0 jobs=$(nproc) targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --max-len) max_len="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    --minimize) minimize=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(handles transforms gemm routed moe ep)

# clang++, else the newest clang++-NN on PATH; it must link -fsanitize=fuzzer (libclang-rt-NN-dev).
cxx=""
for candidate in clang++ $(compgen -c clang++- 2>/dev/null | grep -E '^clang\+\+-[0-9]+$' | sort -t- -k2 -nr); do
  command -v "$candidate" >/dev/null 2>&1 && { cxx="$candidate"; break; }
done
if [ -z "$cxx" ]; then
  echo "fuzz: skipped: no clang++ on PATH (scripts/setup.sh --reliability installs clang and libFuzzer)"
  exit 0
fi
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe_dir/p.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe_dir/p.cpp" -o "$probe_dir/p" >"$probe_dir/log" 2>&1; then
  echo "fuzz: skipped: $cxx cannot link libFuzzer with ASan + UBSan (install libclang-rt-<version>-dev):"
  head -3 "$probe_dir/log"
  exit 0
fi
cc="${cxx/clang++/clang}"

echo "== fuzz: building (preset fuzz, $cxx)"
# A different compiler makes CMake drop the cache and reconfigure without the preset's variables,
# silently building an uninstrumented library; start from a fresh cache instead.
cache="$root/build/fuzz/CMakeCache.txt"
if [ -f "$cache" ] && ! grep -qx "CMAKE_CXX_COMPILER:STRING=$(command -v "$cxx")" "$cache"; then
  rm -rf "$cache" "$root/build/fuzz/CMakeFiles"
fi
cmake --preset fuzz -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" >/dev/null || exit 1
cmake --build --preset fuzz -j "$(nproc)" >/dev/null || { cmake --build --preset fuzz -j 1; exit 1; }

out="$root/build/fuzz/runs"
mkdir -p "$out" "$root/build/fuzz/artifacts"
# allocator_may_return_null: the targets ask for absurd sizes and expect MEGAMOE_ERROR_OUT_OF_MEMORY.
# No allocation stacks and a smaller quarantine: half again as many executions per second; replay a
# reproducer with plain ASAN_OPTIONS to see where its memory was allocated and freed.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:malloc_context_size=0:quarantine_size_mb=16:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

# The committed corpus is a seed set, kept small: -use_counters=0 makes an edge count as covered once,
# whatever its hit count, so merging keeps only inputs that reach an edge no other input reaches (hit
# counts are regrown by any run in seconds).
if [ "$minimize" -eq 1 ]; then
  coverage() {  # "cov: N ft: N" of one pass over a directory
    "$root/build/fuzz/tests/fuzz/megamoe_fuzz_$1" -runs=0 "$2" 2>&1 | grep -m1 -oE 'cov: [0-9]+ ft: [0-9]+'
  }
  failed=0
  for t in "${targets[@]}"; do
    corpus="$root/tests/fuzz/corpus/$t" fresh="$out/minimized-$t"
    rm -rf "$fresh" && mkdir -p "$fresh"
    if ! "$root/build/fuzz/tests/fuzz/megamoe_fuzz_$t" -merge=1 -use_counters=0 "$fresh" "$corpus" >"$out/$t.minimize.log" 2>&1; then
      echo "fuzz: minimizing the corpus of $t failed; log $out/$t.minimize.log" >&2
      failed=1
      continue
    fi
    # The merge names what it keeps by its SHA-1; inputs named by hand (seed-op0, ...) keep their names.
    for input in "$corpus"/*; do
      kept="$fresh/$(sha1sum "$input" | cut -c1-40)"
      if [ -e "$kept" ] && [ "$kept" != "$fresh/${input##*/}" ]; then mv "$kept" "$fresh/${input##*/}"; fi
    done
    echo "$t: $(ls "$corpus" | wc -l) inputs, $(coverage "$t" "$corpus") -> $(ls "$fresh" | wc -l) inputs, $(coverage "$t" "$fresh")"
    rm -rf "$corpus" && mv "$fresh" "$corpus"
  done
  exit $failed
fi

run_target() {
  local t="$1" work="$out/corpus-$t"
  mkdir -p "$work"
  rm -f "$root/build/fuzz/artifacts/$t-"*
  local start=$SECONDS
  cp -n "$root/tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
  "$root/build/fuzz/tests/fuzz/megamoe_fuzz_$t" "$work" -max_total_time="$seconds" -runs="$runs" -max_len="$max_len" \
    -print_final_stats=1 -rss_limit_mb=4096 -timeout=30 \
    -artifact_prefix="$root/build/fuzz/artifacts/$t-" >"$out/$t.log" 2>&1
  echo $? >"$out/$t.rc"
  echo $((SECONDS - start)) >"$out/$t.seconds"
}

active=0
for t in "${targets[@]}"; do
  run_target "$t" &
  active=$((active + 1))
  if [ "$active" -ge "$jobs" ]; then wait -n; active=$((active - 1)); fi
done
wait

failed=0
printf '%-11s %12s %8s %8s %9s %8s\n' target executions seconds exec/s coverage crashes
for t in "${targets[@]}"; do
  log="$out/$t.log"
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  crashes=$(ls "$root/build/fuzz/artifacts/$t-"* 2>/dev/null | wc -l)
  rc=$(cat "$out/$t.rc")
  printf '%-11s %12s %8s %8s %9s %8s\n' "$t" "${execs:-0}" "$(cat "$out/$t.seconds")" "${rate:-0}" "$cov" "$crashes"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz: $t FAILED (exit $rc); log $log; reproducers:" >&2
    ls "$root/build/fuzz/artifacts/$t-"* >&2 2>/dev/null
    grep -m3 -E 'ERROR|invariant violated|runtime error' "$log" >&2
  elif [ "$merge" -eq 1 ]; then
    mkdir -p "$root/tests/fuzz/corpus/$t"
    "$root/build/fuzz/tests/fuzz/megamoe_fuzz_$t" -merge=1 -use_counters=0 "$root/tests/fuzz/corpus/$t" "$out/corpus-$t" \
      >"$out/$t.merge.log" 2>&1 || { echo "fuzz: merging the corpus of $t failed" >&2; failed=1; }
  fi
done
exit $failed
