"""Nothing left behind, whatever stops the harness.

The harness is started as a user starts it (pksmtb.py run, a process of
its own), stopped mid-run by a signal once the guest is up, and the host is
searched for processes of that boot (its umid).  SIGINT, SIGTERM and SIGHUP
are handled as Ctrl-C is (the kernel killed, the run finished, exit
128+signal); SIGKILL cannot be handled, and the kernel's parent-death
signal takes it down.  The same is checked for a run in process (runner.run)
inside a Python that is SIGKILLed, as pytest around a run would be.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import built
from pksmtb import paths, results
from pksmtb.console import Console

pytestmark = pytest.mark.boot

SLOW = ('[scenario]\nname = "slow"\nvariant = "ksm"\nmem = "64M"\ntimeout = 300\n'
        '[[workload]]\nprogram = "dupalloc"\noptions = { procs = 2, mib = 4, hold = 120 }\n')
IN_PROCESS = """
import sys
sys.path.insert(0, {harness!r})
from pathlib import Path
from pksmtb import runner
runner.run(runner.RunRequest({scenario!r}, results=Path({root!r}), progress=False))
"""


def uml_processes(umid: str) -> list[str]:
    """Host processes of the boot with this umid (the kernel, its helpers,
    the guest's user processes: all carry the kernel's command line)."""
    out = subprocess.run(["pgrep", "-a", "-f", f"umid={umid}"], capture_output=True, text=True)
    return out.stdout.splitlines()


def wait_for_guest(root: Path, proc: subprocess.Popen[str]) -> tuple[Path, str]:
    """The run directory and umid, once the guest's workload has started."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = results.all_runs(root)
        if runs and Console.parse(_text(runs[0] / "console.log")).events_named("filled"):
            meta = results.read_json(runs[0] / "meta.json")
            m = re.search(r"umid=(\S+)", meta["kernel_command_line"])
            assert m
            return runs[0], m.group(1)
        time.sleep(0.2)
    raise AssertionError("the guest did not start its workload in 120 s")


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def gone(umid: str, within_s: float = 10) -> list[str]:
    """Processes of the boot still there after within_s seconds."""
    deadline = time.monotonic() + within_s
    left = uml_processes(umid)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = uml_processes(umid)
    return left


@contextmanager
def harness(argv: list[str],
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """The harness as a process of its own; SIGKILLed if the test fails early."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_ends_the_run_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    built("ksm")
    sc = tmp_path / "slow.toml"
    sc.write_text(SLOW)
    root = tmp_path / "runs"
    with harness([sys.executable, str(paths.TOP / "harness" / "pksmtb.py"), "run", str(sc),
                  "--results", str(root), "-q"]) as proc:
        run_dir, umid = wait_for_guest(root, proc)
        assert uml_processes(umid), "no UML process found while the guest runs"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, out
        assert gone(umid, 0) == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 128 + sig
    assert f"interrupted by {sig.name}" in summary["problems"][0]


@pytest.mark.parametrize("how", ["cli", "in-process"])
def test_sigkill_leaves_no_kernel(tmp_path: Path, how: str) -> None:
    built("ksm")
    sc = tmp_path / "slow.toml"
    sc.write_text(SLOW)
    root = tmp_path / "runs"
    if how == "cli":
        argv = [sys.executable, str(paths.TOP / "harness" / "pksmtb.py"), "run", str(sc),
                "--results", str(root), "-q"]
    else:
        argv = [sys.executable, "-c", IN_PROCESS.format(
            harness=str(paths.TOP / "harness"), scenario=str(sc), root=str(root))]
    with harness(argv) as proc:
        _, umid = wait_for_guest(root, proc)
        assert uml_processes(umid)
        proc.kill()
        proc.communicate(timeout=30)
        assert gone(umid) == [], "UML processes survived the harness"


def test_killed_parent_stops_the_run(tmp_path: Path) -> None:
    """Under make (PKSMTB_STOP_WITH_PARENT=1), a killed make stops the run."""
    built("ksm")
    sc = tmp_path / "slow.toml"
    sc.write_text(SLOW)
    root = tmp_path / "runs"
    cmd = (f"{shlex.quote(sys.executable)} {shlex.quote(str(paths.TOP / 'harness' / 'pksmtb.py'))}"
           f" run {shlex.quote(str(sc))} --results {shlex.quote(str(root))} -q; true")
    env = {**os.environ, "PKSMTB_STOP_WITH_PARENT": "1"}
    with harness(["sh", "-c", cmd], env) as parent:
        run_dir, umid = wait_for_guest(root, parent)
        parent.kill()                     # the 'make': the harness is orphaned
        parent.communicate(timeout=30)
        assert gone(umid, 30) == [], "the run outlived its parent"
        deadline = time.monotonic() + 30
        while not (run_dir / "summary.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["exit_code"] == 143
