"""gdb drives the real kernel: breakpoint in PKSM, backtrace, structures, finish."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import built, explain
from pksmtb import gdb, paths, runner

pytestmark = pytest.mark.boot


def test_gdb_breakpoint_backtrace_struct(runs_root: Path) -> None:
    built("pksm")
    script = paths.TOP / "harness" / "gdb" / "pksm-smoke.gdb"
    res = gdb.run_gdb(runner.RunRequest("pksm-merge", results=runs_root, progress=False),
                      script)
    assert isinstance(res, runner.RunResult)
    assert res.exit_code == 0, explain(res)
    out = res.console_text
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
    assert res.summary["verdict"] == "pass", res.summary
    assert "gdb_command_line" in res.meta
