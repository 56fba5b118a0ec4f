#!/usr/bin/env bash
# valgrind memcheck over a subset of the C# suite on the CPU backend (docs/RELIABILITY.md).
# CoreCLR itself is not memcheck-clean (its JIT'd code, GC and stack probing read memory valgrind
# considers invalid or uninitialised), so the verdict (scripts/valgrind_verdict.py) counts only errors
# made by libmegamoe's code or touching memory it allocated, and "definitely lost" leaks allocated by
# it; the CoreCLR reports are kept in the log. Skips, saying why, when valgrind or the built suite is
# missing.
#   scripts/valgrind_managed.sh [preset] [filter]   default: cpu, the error, lifetime and context tests
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
preset="${1:-cpu}"
filter="${2:-FullyQualifiedName~ErrorTests|FullyQualifiedName~LifetimeTests|FullyQualifiedName~ContextTests}"

if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind: skipped: valgrind is not installed (scripts/setup.sh --reliability installs it)"
  exit 0
fi
tests="$root/tests/managed/MegaMoe.Tests"
if ! dotnet build "$tests/MegaMoe.Tests.csproj" -c Release -p:MegaMoeNativeDir="$root/build/$preset/native" \
     -v quiet -nologo >/dev/null; then
  echo "valgrind: the C# suite does not build (run scripts/test.sh first)" >&2
  exit 1
fi
bin=$(ls -d "$tests"/bin/Release/net*/ | head -1)
out="$root/build/$preset/test-logs"
mkdir -p "$out"

# W^X double-mapping makes every JIT'd frame an anonymous memfd and slows valgrind further.
export DOTNET_EnableWriteXorExecute=0
echo "== valgrind memcheck: dotnet MegaMoe.Tests.dll --filter \"$filter\""
(cd "$bin" && valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --num-callers=40 \
  --xml=yes --xml-file="$out/valgrind-managed.xml" --log-file="$out/valgrind-managed.log" \
  dotnet MegaMoe.Tests.dll --filter "$filter" >"$out/valgrind-managed-tests.log" 2>&1)
tests_rc=$?
grep -E "^\s+(total|failed|succeeded|skipped):" "$out/valgrind-managed-tests.log"

python3 "$root/scripts/valgrind_verdict.py" "$out/valgrind-managed.xml"
verdict=$?
if [ "$tests_rc" -ne 0 ]; then
  echo "valgrind: the C# tests failed under valgrind (exit $tests_rc): $out/valgrind-managed-tests.log" >&2
  exit 1
fi
exit $verdict
