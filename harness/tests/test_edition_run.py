"""The student edition builds and grades: a boot test of the edition as a
student gets it (test_edition.py inspects it without a boot).

The edition (make dist-student) is built into a temporary directory and,
with the kernel source tarball of this checkout beside it (what `make
deps` would fetch), its own `make` builds its `pksm-up` kernel (PKSM with
the edition's stand-ins) and guest root; then a kernel lab and a gdb lab,
both on that kernel: lab 3 with the reference policy.c handed in as the
student's work (its kernel is built over the stand-in one: full marks),
and lab 1's untouched skeleton (booted under gdb; every check fails, none
for want of a build).

The edition is built in a new temporary directory each time, and the
kernel has debug info, for which ccache hashes the directory it compiles
in: the test turns that off (CCACHE_NOHASHDIR), so that the editions of
later runs hit the cache the first one filled (the first run in a
checkout builds the kernel in full).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import built
from pksmtb import edition, paths


def make(root: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PKSMTB_") and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["CCACHE_NOHASHDIR"] = "1"
    return subprocess.run(["make", "-s", "-C", str(root), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def grades(root: Path, n: int) -> dict[str, object]:
    [g] = json.loads((root / "build" / "lab" / "results" / f"lab{n}-work.json").read_text())
    assert isinstance(g, dict)
    return g


@pytest.mark.boot
def test_student_edition_builds_its_kernel_and_grades(tmp_path: Path) -> None:
    built("pksm-up")            # this checkout's build: the edition's ccache hits
    root = edition.build(tmp_path)
    dl = root / "linux" / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    for f in (paths.TOP / "linux" / "dl").iterdir():
        shutil.copy2(f, dl / f.name)
    r = make(root, "kernel-pksm-up", "rootfs")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]

    # lab 3: the reference handed in as the student's work, over the stand-ins
    r = make(root, "lab", "LAB=3")
    assert r.returncode == 0, r.stderr[-3000:]
    shutil.copy2(paths.TOP / "pksm" / "mm" / "pksm" / "policy.c",
                 root / "labs" / "work" / "3" / "policy.c")
    r = make(root, "lab-check", "LAB=3")
    g = grades(root, 3)
    assert r.returncode == 0 and not g["error"] and g["score"] == g["total"], \
        r.stdout[-3000:] + r.stderr[-2000:]

    # lab 1: the skeleton, under gdb on the edition's kernel
    r = make(root, "lab", "LAB=1")
    assert r.returncode == 0, r.stderr[-3000:]
    r = make(root, "lab-check", "LAB=1")
    g = grades(root, 1)
    checks = g["checks"]
    assert isinstance(checks, list)
    # lab.py exits 1 (a check failed), which make reports as its recipe failing (2)
    assert r.returncode == 2 and not g["error"] and g["score"] == 0 and len(checks) == 4, \
        r.stdout[-3000:] + r.stderr[-2000:]
    assert g["runs"], g
