#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian/Ubuntu machine (only what is missing):
# CMake >= 3.25, Ninja, a C++17 compiler, GoogleTest and python3 (the test summary). The .NET 10 SDK
# must already be on PATH.
#   scripts/setup.sh [--reliability]   --reliability: also clang with libFuzzer and valgrind, for
#                                      scripts/fuzz.sh and scripts/valgrind_managed.sh (best effort:
#                                      those scripts skip, saying why, when the tools are missing)
set -euo pipefail
reliability=0
[ "${1:-}" = "--reliability" ] && reliability=1

need=()
cmake_ok() {
  command -v cmake >/dev/null 2>&1 || return 1
  local v; v=$(cmake --version | head -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
  [ "$(printf '%s\n3.25\n' "$v" | sort -V | head -1)" = "3.25" ]
}
cmake_ok || need+=(cmake)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || need+=(g++)
if [ ! -e /usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake ] && [ ! -e /usr/src/googletest/CMakeLists.txt ] \
   && [ ! -e /usr/lib/aarch64-linux-gnu/cmake/GTest/GTestConfig.cmake ]; then
  need+=(libgtest-dev)
fi

optional=()
if [ "$reliability" -eq 1 ]; then
  command -v valgrind >/dev/null 2>&1 || optional+=(valgrind)
  # Debian's clang does not ship the sanitizer and libFuzzer runtimes; libclang-rt-dev has them.
  command -v clang++ >/dev/null 2>&1 || optional+=(clang)
  compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null || optional+=(libclang-rt-dev)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
  if ! cmake_ok; then
    echo "setup: CMake >= 3.25 is required; this distribution's package is older ($(cmake --version | head -1))" >&2
    exit 1
  fi
fi

if [ ${#optional[@]} -gt 0 ]; then
  echo "setup: installing ${optional[*]} (optional: fuzzing and valgrind)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${optional[@]}"; } ||
    echo "setup: could not install ${optional[*]}; the fuzz and valgrind steps will skip" >&2
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK (10.0 or newer) is required for the C# facade, its tests and the CLI;" >&2
  echo "       install it from https://dot.net and put 'dotnet' on PATH." >&2
  exit 1
fi
