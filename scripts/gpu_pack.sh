#!/usr/bin/env bash
# The development-machine half of the GPU workflow (scripts/gpu_run.sh is the GPU-machine half):
# packs what the GPU machine lacks into .device/ (git-ignored), which the device tool carries:
#   .device/cutlass.tar.xz   include/cute and include/cutlass of the CUTLASS checkout in third_party/cutlass
#                            (README, "Getting CUTLASS"), about 1 MB
#   .device/dotnet/          the .NET runtime, the self-hosted NUnit test executable (Release) and the
#                            megamoe CLI (framework-dependent), about 31 MB; skipped with --no-dotnet
#   usage: scripts/gpu_pack.sh [--no-dotnet]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/.device
mkdir -p "$out"

if [ ! -f "$root/third_party/cutlass/include/cutlass/cutlass.h" ]; then
  echo "gpu_pack.sh: third_party/cutlass is missing; fetch a CUTLASS 4.x release there first (README, Getting CUTLASS)" >&2
  exit 1
fi
tar -C "$root/third_party" -cJf "$out/cutlass.tar.xz" cutlass/include/cute cutlass/include/cutlass

if [ "${1:-}" = "--no-dotnet" ]; then
  du -sh "$out"
  exit 0
fi
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
mkdir -p "$out/dotnet"
# The muxer, hostfxr and the shared framework: what `dotnet MegaMoe.Tests.dll` needs, about 26 MB compressed.
tar -I 'xz -T0' -cf "$out/dotnet/dotnet-runtime.tar.xz" -C "$dotnet_root" dotnet host "shared/Microsoft.NETCore.App/$runtime"
tar -I 'xz -T0' -cf "$out/dotnet/tests.tar.xz" -C "$root/tests/managed/MegaMoe.Tests/bin/Release" net10.0
tar -I 'xz -T0' -cf "$out/dotnet/cli.tar.xz" -C "$cli" megamoe-cli
du -sh "$out"
