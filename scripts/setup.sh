#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian/Ubuntu machine (only what is missing):
# CMake >= 3.25, Ninja, a C++17 compiler, GoogleTest and python3 (the test summary). The .NET 10 SDK
# must already be on PATH.
set -euo pipefail

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

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK (10.0 or newer) is required for the C# facade, its tests and the demo;" >&2
  echo "       install it from https://dot.net and put 'dotnet' on PATH." >&2
  exit 1
fi
