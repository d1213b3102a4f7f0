"""pycompile: one worker of an interpreter farm (host program, run in the
guest by the harness: pksmtb/hostprog.py).

Each worker reads the same --modules standard-library sources (sorted by
name) and compiles them to byte code, over and over, for --seconds,
keeping the last round's code objects.  Reports

    PKSMTB-EVENT throughput prog=pycompile id=I unit=compiles/s value=R build_s=B compiles=N
"""
import argparse
import os
import sys
import time
import types

ap = argparse.ArgumentParser()
ap.add_argument("--id", type=int, required=True)
ap.add_argument("--modules", type=int, default=60)
ap.add_argument("--seconds", type=float, default=10)
ap.add_argument("--merge", action="store_true", help="opt in to KSM (PR_SET_MEMORY_MERGE)")
a = ap.parse_args()
if a.merge:
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(67, 1, 0, 0, 0) != 0:
        sys.exit("pycompile: prctl(PR_SET_MEMORY_MERGE) failed, errno %d" % ctypes.get_errno())

t0 = time.monotonic()
lib = os.path.dirname(os.__file__)
names = sorted(m for m in os.listdir(lib) if m.endswith(".py"))[:a.modules]
sources = []
for m in names:
    with open(os.path.join(lib, m), encoding="utf-8") as f:
        sources.append((m, f.read()))
build = time.monotonic() - t0
n, t1 = 0, time.monotonic()
end = t1 + a.seconds
kept: dict[str, types.CodeType] = {}
while time.monotonic() < end:
    for name, src in sources:
        kept[name] = compile(src, name, "exec")
        n += 1
        if time.monotonic() >= end:
            break
el = time.monotonic() - t1
print("PKSMTB-EVENT throughput prog=pycompile id=%d unit=compiles/s value=%.2f build_s=%.3f "
      "compiles=%d modules=%d" % (a.id, n / el, build, n, len(sources)), flush=True)
