"""PKSM under the shapes real programs make (issue: engine round two).

One boot runs rootfs/src/shapes.c's shapes one after another
(harness/scenarios/pksm-shapes.toml); each prints its figures and the
daemon's counter changes while it ran, judged here shape by shape, then
the run as a whole (verification, console reports).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import built
from test_pksm import CLI

pytestmark = pytest.mark.boot


def shape_events(console: str) -> dict[str, dict[str, str]]:
    """name -> the figures of its 'PKSMTB-EVENT shape' line."""
    out = {}
    for m in re.finditer(r"PKSMTB-EVENT shape name=(\S+) (.*)", console):
        out[m.group(1)] = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
    return out


def test_shapes(runs_root: Path) -> None:
    built("pksm")
    res = subprocess.run([*CLI, "run", "pksm-shapes", "--variant", "pksm",
                          "--results", str(runs_root), "-q"],
                         capture_output=True, text=True, timeout=900)
    runs = [p.parent for p in runs_root.glob("*/*/*/meta.json")]
    assert len(runs) == 1, res.stdout + res.stderr
    console = (runs[0] / "console.log").read_text()
    shapes = shape_events(console)
    assert set(shapes) == {"mremap", "fork-optout", "pinned", "structured", "madvfree",
                           "hotword"}, \
        console[-3000:]
    for name in ("mremap", "fork-optout", "pinned", "structured", "madvfree"):
        assert shapes[name]["result"] == "pass", (name, shapes[name])
    # A lookup costs O(log n) page compares whatever the content: 2 x 4096
    # pages that share one sampled hash (zero but for one word) may not be
    # compared with each other one by one (that was ~4,000 compares a page).
    pages = 2 * int(shapes["structured"]["pages"])
    assert int(shapes["structured"]["hash_false_positives"]) <= 64 * pages, shapes["structured"]
    # Pages rewritten every 20 ms in one word outside any sample never pass
    # probation; the few that slip through back off after their COW break.
    hot = shapes["hotword"]
    assert hot["result"] == "pass", hot
    # (before: a merge-COW cycle every 20-40 ms, ~100 breaks a page in 6 s)
    assert int(hot["cow_breaks"]) <= 3 * int(hot["pages"]), hot
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert res.returncode == 0, res.stdout + res.stderr
    assert summary["verdict"] == "pass", summary
