#!/usr/bin/env python3
"""Prints one closing line 'N passed, N failed, N skipped' for ctest's logs and NUnit's TRX files.

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
    """Arguments: ctest logs (*.log) and TRX files (*.trx), in any number and order. The original call
    (one ctest log, then managed.trx) prints what it always printed; each further TRX file adds a line
    named after it (cli.trx -> "cli:") and counts in the closing line."""
    logs = [a for a in sys.argv[1:] if not a.endswith(".trx")]
    trxs = [a for a in sys.argv[1:] if a.endswith(".trx")]
    suites = []
    for log in logs:
        suites.append(("native", ctest_counts(log)))
    for trx in trxs:
        stem = trx.rsplit("/", 1)[-1][: -len(".trx")]
        suites.append(("managed" if stem == "managed" else stem, trx_counts(trx)))
    for name, counts in suites:
        print(f"{name}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped")
    for trx in trxs:
        reason = trx_skip_reason(trx)
        if reason and trx_counts(trx)[2]:
            stem = trx.rsplit("/", 1)[-1][: -len(".trx")]
            print(f"{'managed' if stem == 'managed' else stem} skipped because: {reason}")
    passed, failed, skipped = (sum(c[i] for _, c in suites) for i in range(3))
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    # A suite that ran nothing must not look green.
    return 1 if failed or passed == 0 or any(c[0] == 0 for _, c in suites) else 0


if __name__ == "__main__":
    sys.exit(main())
