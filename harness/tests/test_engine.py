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


def run_shapes(scenario: str, build: str, root: Path) -> tuple[dict[str, dict[str, str]],
                                                                 subprocess.CompletedProcess[str],
                                                                 Path]:
    built(build)
    variant, _, flavour = build.partition("-")
    args = [*CLI, "run", scenario, "--variant", variant, "--results", str(root), "-q"]
    if flavour:
        args += ["--flavour", flavour, "--timeout", "900"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=1200)
    runs = [p.parent for p in root.glob("*/*/*/meta.json")]
    assert len(runs) == 1, res.stdout + res.stderr
    return shape_events((runs[0] / "console.log").read_text()), res, runs[0]


def judge(res: subprocess.CompletedProcess[str], run_dir: Path) -> None:
    """The run as a whole: every process verified, no console report."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert res.returncode == 0, res.stdout + res.stderr
    assert summary["verdict"] == "pass", summary


def test_shapes(runs_root: Path) -> None:
    shapes, res, run_dir = run_shapes("pksm-shapes", "pksm", runs_root)
    console = (run_dir / "console.log").read_text()
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
    judge(res, run_dir)


@pytest.mark.parametrize("build", ["pksm", "pksm-debug"])
def test_races(runs_root: Path, build: str) -> None:
    shapes, res, run_dir = run_shapes("pksm-races", build, runs_root)
    assert set(shapes) == {"optout-race", "exit-race", "fork-optout", "mremap"}, \
        (run_dir / "console.log").read_text()[-3000:]
    for name, figures in shapes.items():
        assert figures["result"] == "pass", (name, figures)
    # the opt-out landed while merging was under way, not after it
    assert int(shapes["optout-race"]["merged_before"]) < int(shapes["optout-race"]["pages"])
    judge(res, run_dir)
