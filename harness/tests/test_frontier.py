"""The frontier from sweep reports, without a kernel: operating points read
from a committed sweep's report.json, and dominance judged on intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pksmtb import frontier, paths
from pksmtb.frontier import Interval, Point

SMP = paths.TOP / "results" / "pksm-vs-ksm" / "smp"


def test_points_of_a_committed_sweep() -> None:
    report, pts = frontier.load(SMP)
    # 3 programs x 2 variants x 2 vCPU counts, daemon on
    assert len(pts) == 12 and {p.engine for p in pts} == {"pksm", "ksm"}
    # the slowdown is the inverse of the paired throughput ratio
    cell = next(c for c in report["cells"] if c["coords"]["daemon"] == "on")
    ratio = cell["figures"]["throughput"]["paired"]["ratio"]
    p = next(p for p in pts if p.scenario == cell["coords"]["scenario"]
             and p.engine == cell["coords"]["variant"])
    assert p.slowdown.value == pytest.approx(1 / ratio)
    lo, mid, hi = p.slowdown.lo, p.slowdown.value, p.slowdown.hi
    assert lo is not None and mid is not None and hi is not None and lo < mid < hi
    assert p.saved_mib.lo is not None and p.saved_mib.lo <= (p.saved_mib.value or 0)
    # the saving over the run, from the same cell's runs
    runs = cell["figures"]["saved_mib_s"]["values"]
    assert p.saved_mib_s.value == pytest.approx(sum(runs) / len(runs)) and sum(runs) > 0
    assert "| saved MiB*s (run) |" in frontier.table(pts)


def pt(engine: str, slow: tuple[float, float, float], saved: tuple[float, float, float],
       cpu: tuple[float, float, float]) -> Point:
    return Point(engine, "s", "real-pyserve", "2", "k=1", 3, Interval(*slow), Interval(*saved),
                 Interval(*cpu), Interval(None, None, None))


def test_dominance_needs_the_intervals_to_say_so() -> None:
    good = pt("pksm", (1.01, 1.00, 1.02), (40, 38, 42), (0.2, 0.1, 0.3))
    bad = pt("ksm", (1.30, 1.20, 1.40), (30, 28, 32), (2.0, 1.8, 2.2))
    assert frontier.dominates(good, bad) == "yes"
    assert frontier.dominates(bad, good) == "no"
    # saves more but the slowdown intervals overlap: not shown
    close = pt("ksm", (1.02, 0.99, 1.05), (30, 28, 32), (2.0, 1.8, 2.2))
    assert frontier.dominates(good, close) == "not shown"
    assert frontier.domination([good, bad]) == ["real-pyserve, 2 vCPUs: pksm k=1 dominates ksm k=1"]
    # only on the same program and vCPU count
    other = pt("ksm", (1.30, 1.20, 1.40), (30, 28, 32), (2.0, 1.8, 2.2))
    other.vcpus = "1"
    assert frontier.domination([good, other]) == []


def test_a_sweep_without_a_report_or_daemon_on_cells_is_refused(tmp_path: Path) -> None:
    with pytest.raises(frontier.FrontierError, match="report.json"):
        frontier.load(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"cells": []}))
    with pytest.raises(frontier.FrontierError, match="daemon-on"):
        frontier.load(tmp_path)


def test_write_makes_the_table_and_the_plot(tmp_path: Path) -> None:
    md = frontier.write([SMP], tmp_path)
    assert "| pksm |" in md and "| ksm |" in md and "64c1d0048b" in md
    assert (tmp_path / "frontier.png").stat().st_size > 1000
    assert json.loads((tmp_path / "frontier.json").read_text())["points"]
