"""The student edition builds and runs every lab: a boot test of the
edition as a student gets it (test_edition.py inspects it without a boot).

The edition (make dist-student) is built once into a temporary directory
and, with the kernel source tarball of this checkout beside it (what
`make deps` would fetch), its own `make` builds its `pksm-up` kernel (PKSM
with the edition's stand-ins) and guest root.  Then every lab is taken as
a student takes it, in the order of the kernels they boot (`pksm-up`:
labs 1, 2, 3, 5, 7; `pksm`: 6, 8; `pksm-debug-up`: 4): `make lab LAB=n`,
which builds the lab's kernel the first time (once for all the labs that
boot it) and a kernel lab's own tree, and `make lab-check LAB=n` on the
untouched skeleton, in student mode (the only one the edition has).
Each ends with exactly the checks the skeleton cannot pass failed (its
code checks, every one), no harness error, no crash (a run's kernel
report, time-out or hang), and its answers sealed: their form shown
(the stubs of labs 2 and 5 are well-formed, the others' empty words are
not), nothing else: no point, measured value or key.  Labs 2 and 5 boot
nothing.  Lab 3 is graded once more with the reference policy.c handed in
(full marks over the edition's stand-in kernel).

The edition and its kernels are built once for the module; the kernels
have debug info, for which ccache hashes the directory it compiles in:
the test turns that off (CCACHE_NOHASHDIR), so that the editions of later
runs hit the cache the first one filled (a checkout's first run builds
the three kernels in full).  The edition's kernel builds and lab trees are
removed at the end (several GB); its sources, results and build logs stay.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import built
from pksmtb import edition, labs, paths
from pksmtb.verdict import ExitCode


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


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The edition, its pksm-up kernel and guest root built."""
    built("pksm-up")            # this checkout's build: the edition's ccache hits
    root = edition.build(tmp_path_factory.mktemp("edition"))
    dl = root / "linux" / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    for f in (paths.TOP / "linux" / "dl").iterdir():
        shutil.copy2(f, dl / f.name)
    r = make(root, "kernel-pksm-up", "rootfs")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    yield root
    shutil.rmtree(root / "build" / "kernel", ignore_errors=True)
    for tree in (root / "build" / "lab").glob("[0-9]*"):
        for heavy in ("linux", "build"):
            shutil.rmtree(tree / heavy, ignore_errors=True)


# The order the labs are taken in: the labs of one kernel together.
ORDER = [1, 2, 3, 5, 7, 6, 8, 4]
# What a skeleton's run may report, and why; anything else (a kernel
# report, a time-out, a hang, a workload that failed or did not verify)
# is a lab that does not run.  Every kernel of the edition fails the
# KUnit cases of lab 3's policy (its stand-ins: a constant hash, no
# probation; lab 3's skeleton too).
PROBLEMS = [r"KUnit failures: pksm_test_hash, pksm_test_probation, pksm$"]
LAB_PROBLEMS = {
    # the skeleton never passes probation: nothing merges
    3: [r"saved/achievable [0-9.]+ below the expected 0\.9$"],
    # the skeleton trusts a stale node, which the debug build's assertion
    # reports: that is its debug-silent check failing
    4: [r"kernel error reports:\n\s*\[[ 0-9.]+\] WARNING: \S+tree\.c:\d+ at pksm_node_folio\+"]}


@pytest.mark.boot
@pytest.mark.parametrize("n", ORDER)
def test_edition_lab_skeleton_graded_as_a_student(student: Path, n: int) -> None:
    lab = labs.load_lab(n)
    code = set(lab.points) - lab.answer_checks
    r = make(student, "lab", f"LAB={n}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    r = make(student, "lab-check", f"LAB={n}")
    out = r.stdout + r.stderr
    g = grades(student, n)
    assert "Traceback" not in out and not g["error"], out[-3000:]
    assert g["mode"] == "student", g
    checks = g["checks"]
    assert isinstance(checks, list) and {c["name"] for c in checks} == set(lab.points), checks
    shown = [c for c in checks if not c.get("sealed")]
    sealed = [c for c in checks if c.get("sealed")]
    # every code check fails: the skeleton does none of the work
    assert {c["name"] for c in shown} == code, checks
    assert not any(c["passed"] or c["earned"] for c in shown), out[-3000:]
    # the answers: their form and whether they are recorded, nothing more
    assert {c["name"] for c in sealed} == set(lab.answer_checks), checks
    well_formed = n in (2, 5)           # their stubs (0) are well-formed
    for c in sealed:
        assert set(c) == {"name", "points", "sealed", "recorded", "detail"}, c
        assert c["recorded"] == well_formed, c
        # labs 2 and 5 show what the student's own formula gives with the
        # handout's sizes (the stub's 0), nothing measured
        own = "recorded; with the handout's sizes it gives 0"
        assert (c["detail"] == own) == well_formed, c
        assert not re.search(r"measured|said|right|wrong|\d",
                             c["detail"].replace(own, "recorded")), c
        assert re.search(rf"\[ -- \]\s+\?/{c['points']}\s+{re.escape(c['name'])}: "
                         rf"{re.escape(c['detail'])}", r.stdout), r.stdout[-3000:]
    assert "measured" not in out, out[-3000:]
    # lab.py's status: 0 (nothing shown failed, every answer recorded) or
    # 1 (a check failed): make reports 1 as its recipe's failure
    if not code and well_formed:
        assert r.returncode == 0, out[-3000:]
    else:
        assert r.returncode == 2 and "lab-check] Error 1" in r.stderr, out[-3000:]
    # labs 2 and 5 boot nothing; every other lab boots, and its run reports
    # nothing but what its skeleton and the edition's stand-ins cause
    runs = g["runs"]
    assert isinstance(runs, list) and bool(runs) == bool(code), runs
    allowed = PROBLEMS + LAB_PROBLEMS.get(n, [])
    for run in runs:
        summary = json.loads((Path(run) / "summary.json").read_text())
        unexpected = [p for p in summary["problems"]
                      if not any(re.match(a, p) for a in allowed)]
        assert not unexpected, (run, unexpected)
        assert summary["exit_code"] in ((ExitCode.KERNEL,) if n == 4 else (ExitCode.FAIL,)), \
            (run, summary["exit_code"], summary["problems"])


@pytest.mark.boot
def test_edition_lab3_reference_gets_full_marks(student: Path) -> None:
    """The reference policy.c handed in as the student's work, built over
    the stand-ins: full marks."""
    r = make(student, "lab", "LAB=3", "FORCE=1")
    assert r.returncode == 0, r.stderr[-3000:]
    shutil.copy2(paths.TOP / "pksm" / "mm" / "pksm" / "policy.c",
                 student / "labs" / "work" / "3" / "policy.c")
    r = make(student, "lab-check", "LAB=3")
    g = grades(student, 3)
    assert r.returncode == 0 and not g["error"] and g["score"] == g["total"], \
        r.stdout[-3000:] + r.stderr[-2000:]
