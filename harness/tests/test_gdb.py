"""gdb drives the real kernel: breakpoint in PKSM, backtrace, structures, finish."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import built
from pksmtb import paths

pytestmark = pytest.mark.boot


def test_gdb_breakpoint_backtrace_struct(runs_root: Path) -> None:
    built("pksm")
    script = paths.TOP / "harness" / "gdb" / "pksm-smoke.gdb"
    res = subprocess.run(
        [sys.executable, str(paths.TOP / "harness" / "pksmtb.py"), "gdb", "pksm-merge",
         "--batch", str(script), "--results", str(runs_root), "-q"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run = next(p.parent for p in runs_root.glob("*/*/*/meta.json"))
    out = (run / "console.log").read_text()
    # the kernel's gdb scripts are loaded
    assert re.search(r"Linux version 6\.12\.\d+", out), out[-3000:]
    # the breakpoint was hit in pksmd while the workload ran, with a
    # backtrace from the daemon's loop
    assert re.search(r"Breakpoint 1, pksm_merge_pair", out), out[-3000:]
    assert re.search(r"#\d+ .*pksm_do_scan", out), out[-3000:]
    assert re.search(r"#\d+ .*pksmd", out), out[-3000:]
    # structures print with their fields (DWARF is there)
    # (the oldest item of the unstable FIFO: in the tree, its node
    # reachable from it, where = PKSM_UNSTABLE, alive)
    assert re.search(r"\$1 = \{pfn = \d+, \{link = \{next = 0x[0-9a-f]+, prev = 0x[0-9a-f]+\}, "
                     r"unode = 0x[0-9a-f]+\}", out), out[-3000:]
    assert re.search(r"where = 4 '\\004', dead = 0 '\\000'", out), out[-3000:]
    assert re.search(r"\$2 = \{rb_node = 0x", out)
    assert "$3 = 32" in out
    # and the run then finished normally, workload verified
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "pass", summary
    assert "gdb_command_line" in json.loads((run / "meta.json").read_text())
