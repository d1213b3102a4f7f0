"""The batch grader's sandbox (harness/pksmtb/sandbox.py: bubblewrap,
prlimit, timeout).

Without a boot: a sandboxed command writes its scratch and nothing else
of the host, has no network and no capability, and its limits are
enforced; bad limits are refused.  With boots: a lab 1 gdb script's
`shell` command, graded sandboxed, cannot write into the checkout (the
same script unsandboxed does: the test bites), and a kernel lab (3) is
built and booted in the sandbox with the reference's full marks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import built
from pksmtb import labs, paths, sandbox

LAB_PY = [sys.executable, str(paths.TOP / "harness" / "lab.py")]


def boxed(box: sandbox.Sandbox, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.prefix() + ["sh", "-c", script], capture_output=True, text=True)


def test_sandbox_writes_its_scratch_only(tmp_path: Path) -> None:
    sandbox.check()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outside = paths.TOP / "labs" / "sandbox-escape-probe"
    outside.unlink(missing_ok=True)
    box = sandbox.Sandbox((scratch,), cpu_s=20, wall_s=30)
    r = boxed(box, f'echo in > {scratch}/mine && echo tmp > "$TMPDIR/t" && cat "$TMPDIR/t"')
    assert r.returncode == 0 and r.stdout == "tmp\n", r.stderr
    assert (scratch / "mine").read_text() == "in\n"
    # the checkout, beside the scratch, the host's /tmp: read-only
    for target in (outside, tmp_path / "beside", Path("/tmp") / f"sandbox-probe-{tmp_path.name}"):
        r = boxed(box, f"echo out > {target}")
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (target, r.stderr)
        assert not target.exists()
    # the host's files are read-only, also to rm
    r = boxed(box, f"rm -f {paths.TOP / 'Makefile'}; test -f {paths.TOP / 'Makefile'}")
    assert r.returncode == 0
    assert (paths.TOP / "Makefile").is_file()


def test_sandbox_has_no_network_no_capabilities_and_limits(tmp_path: Path) -> None:
    box = sandbox.Sandbox((tmp_path,), cpu_s=1, wall_s=3)
    # only a loopback device, and it is down
    r = boxed(box, "cat /proc/net/dev")
    assert r.returncode == 0, r.stderr
    devices = {ln.split(":")[0].strip() for ln in r.stdout.splitlines()[2:]}
    assert devices <= {"lo"}, devices
    r = boxed(box, "grep CapEff /proc/self/status")
    assert r.stdout.split()[-1] == "0000000000000000", r.stdout
    # a CPU spinner is stopped by its CPU limit (SIGXCPU, SIGKILL after)
    r = boxed(box, "while :; do :; done")
    assert r.returncode != 0
    # a sleeper by the wall-time limit
    slept = subprocess.run(box.prefix() + ["sleep", "30"], capture_output=True, timeout=20)
    assert slept.returncode in (-9, 137), slept.returncode


def test_bad_limits_are_refused(tmp_path: Path) -> None:
    for cpu, wall in ((0, 10), (10, 0)):
        with pytest.raises(sandbox.SandboxError, match="at least 1"):
            sandbox.Sandbox((tmp_path,), cpu, wall).prefix()
    with pytest.raises(sandbox.SandboxError, match="must be a directory"):
        sandbox.Sandbox((tmp_path / "none",)).prefix()
    r = subprocess.run(LAB_PY + ["batch", "3", str(tmp_path), "--sandbox", "--cpu-limit", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "at least 1" in r.stderr, r.stderr


def probe_script(marker: Path) -> str:
    """A lab 1 'watch.gdb' whose shell command writes MARKER, says whether
    it could, and quits before the boot."""
    return ("shell echo SANDBOX-PROBE ran; "
            f"if echo escaped > {marker}; then echo SANDBOX-PROBE wrote; "
            "else echo SANDBOX-PROBE refused; fi\nquit\n")


@pytest.mark.boot
def test_sandboxed_gdb_shell_cannot_write_the_checkout(runs_root: Path, tmp_path: Path) -> None:
    lab = labs.load_lab(1)
    built(lab.base)
    marker = paths.TOP / "labs" / "sandbox-escape-marker"
    marker.unlink(missing_ok=True)
    d = tmp_path / "probe"
    d.mkdir()
    (d / "watch.gdb").write_text(probe_script(marker))
    sub = labs.Submission("probe", labs.submission_files(lab, d))
    try:
        box = sandbox.Sandbox((), cpu_s=60, wall_s=120)
        [g] = labs.grade(lab, [sub], labs.Ctx(results=runs_root / "boxed", sandbox=box))
        console = (Path(g.runs[0]) / "console.log").read_text()
        assert "SANDBOX-PROBE ran" in console and "SANDBOX-PROBE refused" in console, console
        assert not marker.exists()
        assert g.score == 0
        # the same script unsandboxed writes it: what the sandbox stops is real
        [g] = labs.grade(lab, [sub], labs.Ctx(results=runs_root / "open"))
        console = (Path(g.runs[0]) / "console.log").read_text()
        assert "SANDBOX-PROBE wrote" in console, console
        assert marker.read_text() == "escaped\n"
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.boot
def test_kernel_lab_builds_and_boots_in_the_sandbox(runs_root: Path) -> None:
    """Lab 3's reference, as a submission: its own lab tree (removed after),
    built with ccache read-only, booted in the sandbox: full marks."""
    lab = labs.load_lab(3)
    built(lab.base)
    sub = labs.Submission("reference", labs.solution_files(lab))
    root = paths.TOP / "build" / "lab-test" / "3"
    box = sandbox.Sandbox((), cpu_s=600, wall_s=900)
    [g] = labs.grade(lab, [sub], labs.Ctx(results=runs_root, sandbox=box), root)
    assert not g.error and g.score == g.total > 0, g.report()
    assert not root.with_name("3-sandbox").joinpath("reference").exists()
