"""gdb drives the real kernel: breakpoint in KSM, backtrace, structures, finish."""

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
    built("ksm-g")
    script = paths.TOP / "harness" / "gdb" / "ksm-smoke.gdb"
    res = subprocess.run(
        [sys.executable, str(paths.TOP / "harness" / "pksmtb.py"), "gdb", "test-merge",
         "--variant", "ksm", "--batch", str(script), "--results", str(runs_root), "-q"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run = next(p.parent for p in runs_root.glob("*/*/*/meta.json"))
    out = (run / "console.log").read_text()
    # the kernel's gdb scripts are loaded
    assert re.search(r"Linux version 6\.12\.\d+", out), out[-3000:]
    # the breakpoint was hit in ksmd, with a backtrace through the scan thread
    assert re.search(r"Breakpoint 1, ksm_do_scan", out), out[-3000:]
    assert re.search(r"#\d+ .*ksm_scan_thread", out), out[-3000:]
    # structures print with their fields (DWARF is there)
    assert re.search(r"\$1 = \{mm_slot = 0x[0-9a-f]+", out), out[-3000:]
    assert re.search(r"\$2 = \{slot = \{", out), out[-3000:]
    assert re.search(r"\$3 = \d+", out)
    # and the run then finished normally, workload verified
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "pass", summary
    assert "gdb_command_line" in json.loads((run / "meta.json").read_text())
