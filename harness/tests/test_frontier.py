"""The frontier from sweep reports, without a kernel: operating points read
from a committed sweep's report.json, and dominance judged on intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pksmtb import frontier, paths, plot
from pksmtb.frontier import Interval, Point

SMP = paths.TOP / "results" / "pksm-vs-ksm" / "smp"
FRONTIER = paths.TOP / "results" / "frontier"
DOMAINS_COST = paths.TOP / "results" / "domains" / "cost-20261207T045246Z"


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
    got = json.loads((tmp_path / "frontier.json").read_text())
    assert got["points"] and got["dominates_by_saved_mib_s"] == []
    assert "Shown to dominate by the saving over the run (MiB*s)" in md


def test_dominance_by_the_saving_over_the_run() -> None:
    """A point whose peak saving is not shown larger, but whose saving over
    the run is."""
    a = Point("pksm", "s", "real-pyserve", "", "k=1", 4, Interval(1.01, 1.00, 1.02),
              Interval(17.0, 16.0, 18.0), Interval(0.2, 0.1, 0.3), Interval(None, None, None),
              Interval(200.0, 190.0, 210.0))
    b = Point("ksm", "s", "real-pyserve", "", "k=2", 4, Interval(1.30, 1.20, 1.40),
              Interval(17.5, 16.5, 18.5), Interval(2.0, 1.8, 2.2), Interval(None, None, None),
              Interval(150.0, 140.0, 160.0))
    assert frontier.dominates(a, b) == "not shown"
    assert frontier.dominates(a, b, "saved_mib_s") == "yes"
    assert frontier.domination([a, b], "saved_mib_s") == ["real-pyserve: pksm k=1 dominates ksm k=2"]


def _load(*dirs: Path) -> tuple[list[dict[str, object]], list[Point]]:
    reports, pts = [], []
    for d in dirs:
        r, p = frontier.load(d)
        reports.append(r)
        pts += p
    return reports, pts


def test_the_frontier_draws_the_saving_over_the_run_beside_the_peak() -> None:
    reports, pts = _load(FRONTIER / "ksm", FRONTIER / "pksm")
    fig = frontier.figure(pts, frontier.title(reports))
    ax_peak, ax_run, ax_cpu = fig.axes[:3]
    assert ax_peak.get_ylabel().startswith("saved memory at the peak (MiB)")
    assert ax_run.get_ylabel().startswith("saved memory over the run (MiB*s)")
    assert ax_cpu.get_ylabel().startswith("saved memory over the run (MiB*s)")
    assert ax_cpu.get_xlabel().startswith("daemon CPU (s)")

    def drawn(ax: object, axis: int) -> list[float]:
        return sorted(float(v) for c in ax.containers  # type: ignore[attr-defined]
                      for v in (c.lines[0].get_xdata(), c.lines[0].get_ydata())[axis])
    assert drawn(ax_peak, 1) == pytest.approx(sorted(p.saved_mib.value or 0 for p in pts))
    assert drawn(ax_run, 1) == pytest.approx(sorted(p.saved_mib_s.value or 0 for p in pts))
    assert drawn(ax_cpu, 0) == pytest.approx(sorted(p.daemon_cpu_s.value or 0 for p in pts))
    for ax in (ax_peak, ax_run, ax_cpu):
        assert ax.get_ylim()[0] == 0
    assert ax_cpu.get_xlim()[0] == 0
    # every point numbered, the numbers apart, nothing cut off
    assert sorted(int(t.get_text()) for t in ax_run.texts) == list(range(1, len(pts) + 1))
    assert plot.layout_problems(fig) == []
    # the title names the sources the kernels were built from
    head = " ".join(fig._suptitle.get_text().split())
    assert "frontier-ksm: engine ksm: ksm build da77ba8053e3, sources of revision " \
        "17f762130d20 (built at 71d05873fa6b, dirty)" in head


def test_a_numeric_knob_is_a_line_categorical_cells_are_points() -> None:
    # KSM's pages_to_scan: one line, in the knob's order
    _, pts = _load(FRONTIER / "ksm")
    (eb,) = frontier.figure(pts, "t").axes[0].containers
    assert eb.lines[0].get_linestyle() == "-"
    order = sorted(pts, key=lambda p: int(p.knob.split("pages_to_scan=")[1].split()[0]))
    assert list(eb.lines[0].get_xdata()) == pytest.approx([p.slowdown.value for p in order])
    # merge_domain x the number of domains: six separate points, no zig-zag
    _, pts = _load(DOMAINS_COST)
    fig = frontier.figure(pts, "t")
    for ax in fig.axes[:3]:
        (eb,) = ax.containers
        assert eb.lines[0].get_linestyle() == "None" and len(eb.lines[0].get_xdata()) == 6
    assert plot.layout_problems(fig) == []


def test_each_sweep_names_its_boots_harness_and_host_cpu(tmp_path: Path) -> None:
    """frontier.md counts each sweep's boots by harness revision and host
    CPU (from the kept meta.json files), and warns when sweeps ran on
    different CPUs: the committed KSM-without-smart_scan sweep ran on
    another host than the other three."""
    md = frontier.write([FRONTIER / "ksm", FRONTIER / "ksm-nosmart"], tmp_path)
    head = md.split("| program")[0]
    assert "frontier-ksm: revision e9ab1a156d" in head
    assert "24 boots; harness 7efd5de755-dirty (8), e9ab1a156d-dirty (16); host CPU AMD EPYC" in head
    assert "16 boots; harness a73eedf4af (16); host CPU Intel(R) Xeon(R) Processor (16)" in head
    assert "**The boots ran on 2 host CPU models**" in head
    got = json.loads((tmp_path / "frontier.json").read_text())
    assert len(got["host_cpu_models"]) == 2
    one = frontier.write([FRONTIER / "ksm"], tmp_path / "one")
    assert "host CPU models" not in one


def test_a_sweep_without_its_boots_records_says_so(tmp_path: Path) -> None:
    line, cpus = frontier.provenance(tmp_path)
    assert "not kept" in line and cpus == set()


def test_a_report_that_counts_its_boots_is_believed(tmp_path: Path) -> None:
    """A report's own count of the boots in its figures (failed runs left
    out) wins over the meta.json files of every run in the directory."""
    prov = {"harness_revisions": {"0123456789": 4},
            "host_cpu_models": {"CPU A": 3, "unknown": 1}}
    line, cpus = frontier.provenance(FRONTIER / "ksm", {"boots": prov})
    assert line == "4 boots; harness 0123456789 (4); host CPU CPU A (3), unknown (1)"
    assert cpus == {"CPU A"}
