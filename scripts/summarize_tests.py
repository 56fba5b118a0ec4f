#!/usr/bin/env python3
"""Prints one closing line 'N passed, N failed, N skipped' for ctest's log and NUnit's TRX file.

Exit status 1 when anything failed or when no test ran at all (a suite that silently runs nothing
must not look green)."""
import re
import sys
import xml.etree.ElementTree as ET


def ctest_counts(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    total = failed = 0
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    if m:
        failed, total = int(m.group(2)), int(m.group(3))
    skipped = len(re.findall(r"^\s*\d+ - .*\(Skipped\)\s*$", text, re.M))
    return total - failed - skipped, failed, skipped


def trx_skip_reason(path):
    """The message of the first skipped managed test (the GPU tests say why they skip)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    for result in root.iter():
        if result.tag.endswith("UnitTestResult") and result.get("outcome") == "NotExecuted":
            for node in result.iter():
                if node.tag.endswith("Message") and node.text:
                    return node.text.strip().splitlines()[0]
    return None


def trx_counts(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0, 1, 0  # no results file means the managed suite did not run
    ns = {"t": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    counters = root.find(".//t:ResultSummary/t:Counters", ns) if ns else root.find(".//ResultSummary/Counters")
    if counters is None:
        return 0, 1, 0
    total = int(counters.get("total", 0))
    passed = int(counters.get("passed", 0))
    failed = int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0))
    skipped = total - passed - failed
    return passed, failed, skipped


def main():
    ctest_log, trx = sys.argv[1], sys.argv[2]
    n = ctest_counts(ctest_log)
    m = trx_counts(trx)
    print(f"native: {n[0]} passed, {n[1]} failed, {n[2]} skipped")
    print(f"managed: {m[0]} passed, {m[1]} failed, {m[2]} skipped")
    reason = trx_skip_reason(trx)
    if m[2] and reason:
        print(f"managed skipped because: {reason}")
    passed, failed, skipped = (a + b for a, b in zip(n, m))
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 or n[0] == 0 or m[0] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
