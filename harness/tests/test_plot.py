"""The harness's figures, read back from matplotlib (Agg, no display): each
titled with the engine and the build it came from, axes labelled with
units, the value axis from zero, 95 % intervals (not one standard
deviation) as bars, and the cells of a categorical axis (the daemon on and
off) never joined by a line; the co-runner slowdown drawn as its own
figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pksmtb import cli, paths, plot, stats, sweepreport
from pksmtb.sampling import Series

PIN = {"id": "5c2c62184ace", "revision": "bbe96ab1c2d3e4f5", "dirty": False}
META = {"kernel_build": "pksm-debug", "build_id": "5c2c62184ace",
        "build": {"revision": "bbe96ab1c2d3e4f5", "dirty": True},
        "kernel_binary_sha256": "ff" * 32}


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    plot._pyplot().close("all")


def test_build_text_names_the_build_and_its_revision() -> None:
    assert plot.build_text("pksm", PIN) == "pksm build 5c2c62184ace, revision bbe96ab1c2d3"
    assert plot.build_text("ksm", {**PIN, "dirty": True}).endswith("bbe96ab1c2d3 (dirty)")
    # no id in the record: the binary's hash stands for it
    assert plot.build_text("ksm", {"binary_sha256": "ab" * 32}) == "ksm build binary abababababab"
    assert plot.build_text("ksm", None) == "ksm build unknown"
    assert plot.source_text({"pksm": PIN, "ksm": None}) == \
        "ksm build unknown; pksm build 5c2c62184ace, revision bbe96ab1c2d3"
    assert plot.run_title("pksm-merge", META) == (
        "pksm-merge on pksm-debug\npksm-debug build 5c2c62184ace, revision bbe96ab1c2d3 (dirty)")


def series() -> Series:
    rows = [{"t_ms": 1000 + 500 * i, "pages_sharing": 2000 + 100 * i, "ksm_zero_pages": 0}
            for i in range(10)]
    return Series(list(rows[0]), rows)


def test_a_runs_figures_say_where_they_came_from(tmp_path: Path) -> None:
    title = plot.run_title("pksm-merge", META)
    fig = plot.figure_savings(series(), title, filled_t_ms=2000, achievable=3000)
    ax = fig.axes[0]
    assert "pksm-debug build 5c2c62184ace" in ax.get_title()
    assert "revision bbe96ab1c2d3" in ax.get_title()
    assert ax.get_xlabel().endswith("(s)") and ax.get_ylabel().endswith("(MiB)")
    # every value is far above zero, the axis still starts there
    assert ax.get_ylim()[0] == 0
    out = plot.plot_savings(series(), tmp_path / "savings.png", title, 2000, 3000)
    assert out is not None and out.stat().st_size > 1000
    assert plot.plot_savings(Series([], []), tmp_path / "none.png", title) is None
    fig = plot.figure_lifetimes([0.01, 0.2, 0.3, 1.5], 0.1, title)
    ax = fig.axes[0]
    assert "5c2c62184ace" in ax.get_title() and ax.get_ylim()[0] == 0
    assert ax.get_xlabel().endswith("(ms)") and ax.get_ylabel().endswith("(count)")


def cell(cid: str, coords: dict[str, str], vals: list[float], base: str | None) -> dict[str, Any]:
    label = " ".join(f"{k}={v}" for k, v in coords.items())
    return {"id": cid, "label": label, "coords": {"scenario": "real-pyserve", "variant": "pksm",
                                                  **coords},
            "baseline": base, "is_baseline": base == cid, "runs": [],
            "failed_or_missing": 0,
            "figures": {"throughput": {"values": vals, "repeats": list(range(1, len(vals) + 1)),
                                       "sample": None}}}


def report(axes: dict[str, list[str]], cells: list[dict[str, Any]]) -> dict[str, Any]:
    rep = {"sweep": "t", "description": "", "alpha": 0.05, "repeats": 3, "axes": axes,
           "baseline": {"daemon": "off"}, "metrics": ["throughput"],
           "builds": {"pksm": PIN}, "cells": cells}
    return sweepreport.analyze(rep)


ON = [100.0, 104.0, 99.0]
OFF = [120.0, 121.0, 126.0]


def bars(container: Any) -> list[tuple[float, float]]:
    """(low, high) of each error bar of an errorbar container."""
    segs = container.lines[2][0].get_segments()
    return [(float(s[0][1]), float(s[1][1])) for s in segs]


def test_daemon_on_and_off_are_separate_points_with_95_percent_intervals() -> None:
    rep = report({"daemon": ["on", "off"]},
                 [cell("a", {"daemon": "on"}, ON, "b"), cell("b", {"daemon": "off"}, OFF, "b")])
    fig = plot.figure_sweep(rep, "throughput", "throughput (ops/s)")
    ax = fig.axes[0]
    (eb,) = ax.containers
    # one line of the two cells' points, not joined
    assert eb.lines[0].get_linestyle() == "None"
    # each bar is the 95 % t interval of the mean, not mean +- 1 SD
    want = [stats.mean_interval(ON), stats.mean_interval(OFF)]
    for (lo, hi), mi in zip(bars(eb), want):
        assert (lo, hi) == pytest.approx((mi.lo, mi.hi))
    sd = stats.Sample.of(ON)
    assert sd is not None and bars(eb)[0][1] - bars(eb)[0][0] > 2 * sd.stddev
    assert [t.get_text() for t in ax.get_xticklabels()] == ["on", "off"]
    assert ax.get_ylim()[0] == 0 and ax.get_ylabel() == "throughput (ops/s)"
    assert ax.get_xlabel().startswith("daemon")
    head = fig._suptitle.get_text()
    assert "engine pksm" in head and "pksm build 5c2c62184ace, revision bbe96ab1c2d3" in head
    assert "95 % t interval" in head


def test_a_knob_is_a_line_and_daemon_on_off_are_two_lines() -> None:
    cells = []
    for k in ("125", "500", "4000"):
        cells.append(cell(f"on{k}", {"pksm.probation_millisecs": k, "daemon": "on"}, ON,
                          f"off{k}"))
        cells.append(cell(f"off{k}", {"pksm.probation_millisecs": k, "daemon": "off"}, OFF,
                          f"off{k}"))
    rep = report({"pksm.probation_millisecs": ["125", "500", "4000"], "daemon": ["on", "off"]},
                 cells)
    assert plot.sweep_x_axis(rep) == "pksm.probation_millisecs"
    fig = plot.figure_sweep(rep, "throughput", "throughput (ops/s)")
    ax = fig.axes[0]
    lines = {c.get_label(): c.lines[0] for c in ax.containers}
    assert set(lines) == {"variant=pksm daemon=on", "variant=pksm daemon=off"}
    for line in lines.values():
        assert line.get_linestyle() == "-"
        assert list(line.get_xdata()) == [125.0, 500.0, 4000.0]


def test_a_switch_or_a_single_value_is_not_joined() -> None:
    assert not plot.joined("pksm.use_zero_pages", ["0", "1"])
    assert not plot.joined("vcpus", ["1", "2"])
    assert not plot.joined("daemon", ["on", "off"])
    assert plot.joined("pksm.probation_scans", ["0", "1", "3"])
    # a cell of one value has no interval: a point without a bar
    rep = report({"daemon": ["on", "off"]},
                 [cell("a", {"daemon": "on"}, [100.0], "b"),
                  cell("b", {"daemon": "off"}, OFF, "b")])
    (eb,) = plot.figure_sweep(rep, "throughput", "throughput (ops/s)").axes[0].containers
    lo, hi = bars(eb)[0]
    assert lo == hi == 100.0


def test_the_co_runner_slowdown_is_drawn(tmp_path: Path) -> None:
    rep = report({"daemon": ["on", "off"]},
                 [cell("a", {"daemon": "on"}, ON, "b"), cell("b", {"daemon": "off"}, OFF, "b")])
    slow = sweepreport.slowdown(rep)
    fig = plot.figure_slowdown(rep, slow)
    ax = fig.axes[0]
    (eb,) = ax.containers
    ref = stats.paired_ratio(ON, OFF).inverse()
    assert list(eb.lines[0].get_ydata()) == pytest.approx([ref.ratio])
    assert bars(eb) == [pytest.approx((ref.lo, ref.hi))]
    assert eb.lines[0].get_linestyle() == "None"
    assert ax.get_ylim()[0] == 0 and "(x)" in ax.get_ylabel()
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.lines)   # no slowdown
    assert "co-runner slowdown" in ax.get_title() and "5c2c62184ace" in ax.get_title()
    assert plot.figure_slowdown(rep, []) is None
    made = sweepreport.plot(rep, tmp_path)
    assert {p.name for p in made} == {"throughput.png", "slowdown.png"}
    assert all(p.stat().st_size > 1000 for p in made)


def test_a_committed_sweep_is_drawn_again(tmp_path: Path) -> None:
    """A report made before the builds were pinned says so in its titles."""
    rep = json.loads((paths.TOP / "results" / "pksm-vs-ksm" / "smp" / "report.json").read_text())
    made = sweepreport.plot(rep, tmp_path)
    drawn = {m for m in rep["metrics"]
             if any(c["figures"][m]["values"] for c in rep["cells"])}
    assert {p.name for p in made} == {f"{m}.png" for m in drawn} | {"slowdown.png"}
    fig = plot.figure_sweep(rep, "throughput", "throughput")
    assert "build not recorded" in fig._suptitle.get_text()
    assert plot.sweep_x_axis(rep) in ("daemon", "vcpus")
    for ax in fig.axes:
        if ax.get_visible():
            assert ax.get_ylim()[0] == 0
            assert all(c.lines[0].get_linestyle() == "None" for c in ax.containers)


RESULTS = paths.TOP / "results"


def words(text: str) -> str:
    """TEXT with its wrapping undone."""
    return " ".join(text.split())


def test_a_build_from_a_dirty_tree_names_the_commit_its_sources_equal() -> None:
    pin = {"id": "da77ba8053e3", "revision": "71d05873fa6b659eaab9", "dirty": True,
           "clean_at": ["17f762130d20455118608a92"]}
    assert plot.build_text("ksm", pin) == ("ksm build da77ba8053e3, sources of revision "
                                           "17f762130d20 (built at 71d05873fa6b, dirty)")
    # no commit found to equal them: the revision it was built at, dirty
    assert plot.build_text("ksm", {**pin, "clean_at": []}) == \
        "ksm build da77ba8053e3, revision 71d05873fa6b (dirty)"


def test_layout_problems_finds_text_cut_off_or_drawn_over() -> None:
    fig, ax = plot.subplots(figsize=(3, 2))
    ax.set_title("a title far too long for a figure three inches wide, cut off on both sides")
    assert any("title" in p and "runs past the figure" in p for p in plot.layout_problems(fig))
    fig, ax = plot.subplots(figsize=(4, 3))
    ax.set_xticks([0.45, 0.55], ["a long tick label", "another long tick label"])
    assert any("lies over" in p for p in plot.layout_problems(fig))
    fig, ax = plot.subplots(figsize=(4, 3))
    ax.set_title(plot.wrap("a title far too long for a figure four inches wide, wrapped", 4))
    assert plot.layout_problems(fig) == []


def test_nothing_is_cut_off_and_the_title_names_the_sources() -> None:
    """The committed KSM frontier sweep: long cell labels, a build made in a
    dirty tree, a legend; drawn whole."""
    rep = json.loads((RESULTS / "frontier" / "ksm" / "report.json").read_text())
    slow = plot.figure_slowdown(rep, sweepreport.slowdown(rep))
    thr = plot.figure_sweep(rep, "throughput", sweepreport.axis_label("throughput"))
    for fig in (slow, thr):
        assert plot.layout_problems(fig) == []
    ax = slow.axes[0]
    assert "sources of revision 17f762130d20 (built at 71d05873fa6b, dirty)" in \
        words(ax.get_title())
    assert "sources of revision 17f762130d20" in words(thr._suptitle.get_text())
    # the ticks name what differs between the cells, the axis what they share
    assert [t.get_text() for t in ax.get_xticklabels()] == \
        ["pages_to_scan=100", "pages_to_scan=1000", "pages_to_scan=4000"]
    label = words(ax.get_xlabel())
    assert label.startswith("cell (every cell here: real-pyserve") and "daemon=on" in label
    assert label.endswith("), each against its baseline cell"), label
    # the legend inside the axes
    slow.canvas.draw()
    r = slow.canvas.get_renderer()
    box = ax.get_window_extent(r)
    leg = ax.get_legend().get_window_extent(r)
    assert box.x0 <= leg.x0 and leg.x1 <= box.x1 and box.y0 <= leg.y0 and leg.y1 <= box.y1


@pytest.mark.parametrize("study", ["probation", "probation/model", "probation/pycompile",
                                   "pksm-vs-ksm", "pksm-vs-ksm/paced", "pksm-vs-ksm/smp"])
def test_the_studies_from_before_the_rules_are_drawn_by_them(study: str) -> None:
    """Reports that record no build: the revision the sweep ran at in the
    title, 95 % intervals, the value axis from zero, on/off never joined,
    nothing cut off."""
    rep = sweepreport.reanalyze(json.loads((RESULTS / study / "report.json").read_text()))
    rev = rep["reproduce"][-1]["git_revision"][:12]
    for m in rep["metrics"]:
        fig = plot.figure_sweep(rep, m, sweepreport.axis_label(m))
        if fig is None:
            continue
        head = words(fig._suptitle.get_text())
        assert f"the sweep ran at revision {rev}" in head
        assert "95 % t interval" in head and "stddev" not in head
        assert plot.layout_problems(fig) == []
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            # from zero, or from the lower end of an interval below it
            assert ax.get_ylim()[0] == min(0.0, ax.dataLim.y0)
            if not ax.get_xlabel().startswith("pksm.probation_scans"):
                assert all(c.lines[0].get_linestyle() == "None" for c in ax.containers)
        plot._pyplot().close(fig)


def test_a_metric_without_a_label_gets_its_unit() -> None:
    assert sweepreport.axis_label("throughput") == "throughput (ops/s, all workers)"
    assert sweepreport.axis_label("swap_pool_peak_bytes") == "swap_pool_peak_bytes (bytes)"
    assert sweepreport.axis_label("swap_workload_s") == "swap_workload_s (s)"
    assert sweepreport.axis_label("swap_offered") == "swap_offered (pages)"
    assert sweepreport.axis_label("swap_allocstall") == "swap_allocstall (count)"


def test_sweep_report_draws_the_plots_again(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(
        (RESULTS / "pksm-vs-ksm" / "smp" / "report.json").read_text())
    assert cli.main(["sweep-report", str(tmp_path)]) == 0
    assert not (tmp_path / "plots").exists()
    assert cli.main(["sweep-report", str(tmp_path), "--plots"]) == 0
    assert (tmp_path / "plots" / "throughput.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "slowdown.png").is_file()
