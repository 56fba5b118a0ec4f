#!/usr/bin/env bash
# Packs what the managed test suite needs on a GPU machine that has no .NET: the .NET runtime, the self-hosted
# test executable (Release), the megamoe CLI (Release, framework-dependent, for the smoke run after the tests) and
# run-gpu-tests.sh, into DIR (default .dotnet-carry/ at the repository root, which git ignores). Carry DIR to the GPU
# machine and point scripts/gpu_run.sh's MEGAMOE_DOTNET_DIR at it.
#   usage: tests/managed/gpu/pack.sh [DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$root/.dotnet-carry}
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
runtime=$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')

dotnet build -c Release "$root/tests/managed/MegaMoe.Tests" -nologo -v quiet
# The CLI runs on the same shared framework as the tests: framework-dependent, not NativeAOT (that needs a native
# toolchain here and would be a second copy of the runtime there). linux-x64 keeps only that platform's native assets
# (SkiaSharp, for bench --plot); the CPU libmegamoe.so copied beside it stays unused, MEGAMOE_NATIVE_PATH wins.
cli=$(mktemp -d)
trap 'rm -rf "$cli"' EXIT
dotnet publish "$root/managed/MegaMoe.Cli" -c Release -r linux-x64 --self-contained false -p:PublishAot=false \
  -o "$cli/megamoe-cli" -nologo -v quiet
mkdir -p "$out"
# The muxer, hostfxr and the shared framework: what `dotnet MegaMoe.Tests.dll` needs, about 26 MB compressed.
tar -I 'xz -T0' -cf "$out/dotnet-runtime.tar.xz" -C "$dotnet_root" dotnet host "shared/Microsoft.NETCore.App/$runtime"
tar -I 'xz -T0' -cf "$out/tests.tar.xz" -C "$root/tests/managed/MegaMoe.Tests/bin/Release" net10.0
# The CLI, about 5 MB compressed.
tar -I 'xz -T0' -cf "$out/cli.tar.xz" -C "$cli" megamoe-cli
cp "$here/run-gpu-tests.sh" "$out/"
du -sh "$out"
