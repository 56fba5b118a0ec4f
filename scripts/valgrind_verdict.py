#!/usr/bin/env python3
"""Verdict over valgrind memcheck's XML for a run of the C# suite (scripts/valgrind_managed.sh).

CoreCLR is not memcheck-clean, so an error counts against MegaMoe only when libmegamoe did the access
or owns the memory:
  - the code that made the access (or the allocation, for a leak) is libmegamoe: the first frame of the
    error's stack outside the C/C++ runtime (libc, libstdc++, ld.so, valgrind's preload), so a bad
    memcpy called by libmegamoe counts and a runtime frame above it does not hide it;
  - or the address lies in a block that libmegamoe allocated or freed (the same rule applied to the
    block's stacks): managed code reading a freed buffer or past a native string is a MegaMoe bug.
An error whose faulting code is CoreCLR's and which shows a libmegamoe frame only deeper in its stack
is printed but not counted: valgrind unwinds JIT'd and ReadyToRun frames by frame pointer, and a stale
return address into libmegamoe left on the stack by an earlier P/Invoke then shows up as a frame.

  valgrind_verdict.py FILE.xml      prints the verdict; exit 1 when an error counts against MegaMoe
  valgrind_verdict.py --self-test   checks the classification on synthetic reports
"""
import os
import sys
import xml.etree.ElementTree as ET

OURS = "libmegamoe"
# Objects whose frames are skipped to find the code responsible for an access: they act for a caller.
RUNTIME = ("libc.so", "libc-", "libpthread", "libstdc++", "libgcc_s", "libm.so", "ld-linux", "vgpreload_")
FRAMES_SHOWN = 14


def _obj(frame):
    return os.path.basename(frame.findtext("obj") or "")


def _responsible(stack):
    """The first frame outside the C/C++ runtime (JIT'd frames have no object and count as CoreCLR's)."""
    for frame in stack.findall("frame"):
        if not _obj(frame).startswith(RUNTIME):
            return frame
    return None


def _is_ours(frame):
    return frame is not None and OURS in _obj(frame)


def classify(error):
    """'ours', 'below' (a libmegamoe frame under CoreCLR's faulting code) or 'coreclr'."""
    if any(_is_ours(_responsible(stack)) for stack in error.findall("stack")):
        return "ours"
    if any(OURS in _obj(frame) for frame in error.iter("frame")):
        return "below"
    return "coreclr"


def describe(error):
    what = error.findtext("what") or error.findtext("xwhat/text") or "?"
    lines = [f"  {error.findtext('kind')}: {what}"]
    for child in error:
        if child.tag == "auxwhat":
            lines.append(f"    {child.text}")
        elif child.tag == "xauxwhat":
            lines.append(f"    {child.findtext('text')}")
        elif child.tag == "stack":
            frames = child.findall("frame")
            for frame in frames[:FRAMES_SHOWN]:
                where = frame.findtext("fn") or "???"
                if frame.findtext("file"):
                    where += f" ({frame.findtext('file')}:{frame.findtext('line')})"
                lines.append(f"      at {frame.findtext('ip')} {where} in {_obj(frame) or '[JIT]'}")
            if len(frames) > FRAMES_SHOWN:
                lines.append(f"      ... {len(frames) - FRAMES_SHOWN} more frames")
    return "\n".join(lines)


def verdict(root, out=sys.stdout):
    errors = root.findall("error")
    groups = {"ours": [], "below": [], "coreclr": []}
    for error in errors:
        groups[classify(error)].append(error)
    ours, below = groups["ours"], groups["below"]
    print(f"valgrind: {len(errors)} reports in all, {len(groups['coreclr']) + len(below)} in CoreCLR code "
          f"({len(below)} of them with a libmegamoe frame deeper in the stack), {len(ours)} against libmegamoe",
          file=out)
    for title, group in (("against libmegamoe (counted)", ours),
                         ("CoreCLR code faulting, libmegamoe deeper in the stack (not counted)", below)):
        if group:
            print(f"valgrind: {title}:", file=out)
            for error in group:
                print(describe(error), file=out)
    return 1 if ours else 0


def _error(kind, *stacks, aux=None):
    """A synthetic <error>: each stack is a list of (fn, obj) pairs; aux describes the block of stacks[1:]."""
    xml = f"<error><kind>{kind}</kind><what>{kind} report</what>"
    for i, stack in enumerate(stacks):
        if i == 1 and aux:
            xml += f"<auxwhat>{aux}</auxwhat>"
        xml += "<stack>" + "".join(
            f"<frame><ip>0x{n:x}</ip><fn>{fn}</fn><obj>{obj}</obj></frame>" for n, (fn, obj) in enumerate(stack)
        ) + "</stack>"
    return ET.fromstring(xml + "</error>")


def self_test():
    lib = "/build/native/libmegamoe.so.0"
    clr = "/dotnet/System.Private.CoreLib.dll"
    coreclr = "/dotnet/libcoreclr.so"
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    new = "/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"
    malloc = "/valgrind/vgpreload_memcheck-amd64-linux.so"
    jit = ""
    cases = [
        ("fault in libmegamoe", "ours", _error("InvalidRead", [("kernel", lib), ("main", coreclr)])),
        ("memcpy called by libmegamoe", "ours",
         _error("InvalidWrite", [("memcpy", malloc), ("__memcpy_avx", libc), ("buffer_read", lib)])),
        ("leak allocated by libmegamoe through operator new", "ours",
         _error("Leak_DefinitelyLost", [("malloc", malloc), ("operator new", new), ("create", lib)])),
        ("CoreLib reads a block libmegamoe freed", "ours",
         _error("InvalidRead", [("strlen", clr), ("", jit)], [("free", malloc), ("destroy", lib)],
                aux="Address is 8 bytes inside a block of size 64 free'd")),
        ("CoreLib faults, stale libmegamoe frame below", "below",
         _error("InvalidRead", [("", clr), ("", jit), ("megamoe_buffer_read", lib), ("", coreclr)])),
        ("CoreLib faults on a CoreCLR block", "coreclr",
         _error("InvalidRead", [("", clr)], [("malloc", malloc), ("", coreclr)], aux="inside a block")),
        ("uninitialised value in CoreCLR", "coreclr", _error("UninitCondition", [("", coreclr), ("", clr)])),
        ("libc only (no responsible frame)", "coreclr", _error("InvalidRead", [("strlen", libc)])),
    ]
    failures = 0
    for name, expected, error in cases:
        got = classify(error)
        if got != expected:
            print(f"FAIL {name}: classified {got}, expected {expected}")
            failures += 1
    root = ET.fromstring("<valgrindoutput/>")
    for _, _, error in cases:
        root.append(error)
    with open(os.devnull, "w") as sink:
        if verdict(root, sink) != 1:
            print("FAIL verdict: errors against libmegamoe did not fail the run")
            failures += 1
        clean = ET.fromstring("<valgrindoutput/>")
        clean.extend(e for _, expected, e in cases if expected in ("below", "coreclr"))
        if verdict(clean, sink) != 0:
            print("FAIL verdict: CoreCLR-only errors failed the run")
            failures += 1
    print(f"valgrind_verdict self-test: {len(cases) + 2 - failures} of {len(cases) + 2} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--self-test":
        sys.exit(self_test())
    try:
        report = ET.parse(sys.argv[1]).getroot()
    except (OSError, ET.ParseError) as e:
        sys.exit(f"valgrind: cannot read the XML report {sys.argv[1]}: {e}")
    sys.exit(verdict(report))
