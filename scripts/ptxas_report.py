#!/usr/bin/env python3
"""Per-kernel register / stack / spill table of the SM90 GEMM variants from an nvcc -Xptxas=-v log.

  scripts/ptxas_report.py build.log [baseline-build.log]

With a baseline log (e.g. the same kernels built from an earlier commit) each row also shows the
baseline's numbers, so a refactor that adds spills is visible before any timing.
"""
import re
import subprocess
import sys

KINDS = {"0": "dense", "1": "contiguous", "2": "masked", "3": "offsets", "4": "routed", "5": "split_k"}
EPILOGUES = {"0": "bf16", "1": "routed_bf16", "2": "swiglu_fp8", "3": "combine_f32"}


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
        return out.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names


def variant_name(demangled):
    m = re.search(r"gemm_kernel<\(?[\w:]*GemmKind\)?(\d+), (\d+)u, (\d+)u, (\d+)u, \(?[\w:]*GemmEpilogue\)?(\d+)>", demangled)
    if not m:
        return None
    kind, bm, bn, mc, epi = m.groups()
    return f"{KINDS.get(kind, kind)} {bm}x{bn}x{mc} {EPILOGUES.get(epi, epi)}"


def parse(path):
    entries, current = [], None
    for line in open(path, errors="replace"):
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = [m.group(1), None, None, None, None]
            entries.append(current)
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current is not None and current[1] is None:
            current[1:4] = [int(v) for v in m.groups()]
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current is not None and current[4] is None:
            current[4] = int(m.group(1))
    table = {}
    for (mangled, stack, stores, loads, regs), demangled in zip(entries, demangle([e[0] for e in entries])):
        name = variant_name(demangled)
        if name is not None:
            table[name] = (regs, stack, stores, loads)
    return table


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    table = parse(sys.argv[1])
    base = parse(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(f"{'variant':40s} {'regs':>5s} {'stack':>6s} {'spill st/ld':>12s}" + ("   baseline" if base else ""))
    for name in sorted(table):
        regs, stack, stores, loads = table[name]
        row = f"{name:40s} {regs!s:>5s} {stack!s:>6s} {f'{stores}/{loads}':>12s}"
        if base:
            b = base.get(name)
            row += "   " + (f"{b[0]} {b[1]} {b[2]}/{b[3]}" if b else "-")
            if b and (stores, loads) != (b[2], b[3]):
                row += "   CHANGED"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
