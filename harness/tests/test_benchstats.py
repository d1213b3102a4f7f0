"""The benches' statistics on made-up and committed figures.json files
(no kernel: bench_engine.py and pksmtb/benchswap.py only summarize here)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import bench_engine
from pksmtb import benchstats, benchswap, paths, stats

BENCH = paths.TOP / "results" / "bench"


def test_by_repeat_keyed_and_by_position() -> None:
    runs: list[dict[str, Any]] = [{"repeat": 2, "x": 3.0}, {"repeat": 0, "x": 1.0}, {"repeat": 1}]
    vals, how = benchstats.by_repeat(runs, lambda d: d["x"])
    assert vals == {2: 3.0, 0: 1.0} and how == benchstats.BY_REPEAT
    old: list[dict[str, Any]] = [{"x": 1.0}, {"x": None}, {"x": 3.0}]
    vals, how = benchstats.by_repeat(old, lambda d: d["x"])
    assert vals == {0: 1.0, 2: 3.0} and how == benchstats.BY_POSITION
    assert benchstats.by_repeat([], lambda d: d["x"]) == ({}, benchstats.BY_POSITION)


def test_paired_uses_common_repeats_only() -> None:
    pr = benchstats.paired({0: 2.0, 1: 4.4, 2: 9.0}, {0: 1.0, 1: 2.0})
    assert pr.n == 2
    assert pr.ratio == pytest.approx(math.sqrt(2.0 * 2.2))


def test_judged_verdicts() -> None:
    pr = stats.paired_ratio([1.00, 1.02, 1.01, 1.03], [1.0, 1.0, 1.0, 1.0])
    j = benchstats.judge_ratio(pr, stats.Target(1.05), "x")
    assert j.verdict == stats.MET and j.how == "x, 4 pair(s)"
    assert benchstats.judge_ratio(pr, stats.Target(0.99), "x").verdict == stats.NOT_MET
    assert benchstats.judge_ratio(pr, stats.Target(1.02), "x").verdict == stats.NOT_SHOWN
    one = benchstats.judge_ratio(stats.paired_ratio([1.0], [2.0]), stats.Target(1.05), "x")
    assert one.verdict == stats.NOT_SHOWN and one.lo is None and one.reason
    m = benchstats.judge_mean([180.0, 190.0, 200.0], stats.Target(9000))
    assert m.verdict == stats.MET and m.how == "one sample, mean of 3"
    assert m.text("{:.0f}") == f"190 [{m.lo:.0f}-{m.hi:.0f}]"
    assert benchstats.judge_ratio(pr, None, "x").verdict is None


def test_format_table_aligns_columns() -> None:
    rows = [("name", "n", "note"), ("a", "1234", ""), ("longer", "5", "x")]
    assert benchstats.format_table(rows, left=(0, 2)) == [
        "name       n  note",
        "------  ----  ----",
        "a       1234",            # an empty last cell leaves no blanks behind
        "longer     5  x"]
    assert benchstats.format_table([("k", "value"), ("key", "1")]) == [
        "k    value", "---  -----", "key      1"]


def engine_run(rep: int | None, v: str, scale: float) -> dict[str, Any]:
    """A made-up python-figure run: rps and build time per side."""
    on_rps = (1000.0 if v == "pksm" else 600.0) * scale
    d: dict[str, Any] = {
        "on": {"rps_median": on_rps, "build_median_s": 2.0 / scale, "cow_per_merged": 3.0,
               "saved_peak_pages": 2560},
        "off": {"rps_median": 1020.0 * scale, "build_median_s": 1.98 / scale},
        "slowdown_rps": 1020.0 / (on_rps / scale), "slowdown_build": 2.0 / 1.98}
    if rep is not None:
        d["repeat"] = rep
    return d


def test_engine_summary_pairs_by_repeat() -> None:
    # the host's load scales both variants of a repeat alike
    scales = [1.0, 0.7, 1.3]
    raw = {"python": {v: [engine_run(i, v, s) for i, s in enumerate(scales)]
                      for v in ("pksm", "ksm")}}
    raw["python"]["pksm"][1]["off"]["rps_median"] *= 1.001   # a little noise
    summary = bench_engine.summarize(raw)
    row = summary["3  python requests/s, merging on"]
    assert row["ratio"] == pytest.approx(1000 / 600) and row["pairing"] == ["repeat"]
    assert row["paired"]["lo"] is None          # every repeat's ratio the same: no interval
    slow = summary["3  slowdown, requests/s off/on"]
    assert slow["judged"]["how"] == "pksm's two boots of a repeat, paired, 3 pair(s)"
    assert slow["judged"]["value"] == pytest.approx(1.02, abs=0.001)
    assert slow["met"] == stats.MET            # [1.018-1.022] lies under 1.05
    assert summary["1a daemon ns/page, sparse (zero but 1 word)"]["met"] == stats.NOT_SHOWN
    txt = bench_engine.table(summary)
    assert "runs paired by repeat" in txt and "met?" in txt
    assert "pksm <= 1.05" in txt and "pksm/ksm <= 2" in txt


def test_engine_report_of_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    # before --vcpus (figure groups at the top) and after (vcpus=N)
    for name in ("engine-20261130T024113Z", "engine-20261205T202542Z"):
        assert bench_engine.report(BENCH / name) == 0, name
        out = capsys.readouterr().out
        assert "paired by their position in figures.json" in out, name
        assert "not met" in out and "met?" in out
    assert "vcpus not recorded" in (bench_engine.report(BENCH / "engine-20261130T024113Z")
                                    == 0 and capsys.readouterr().out or "")


def test_reports_refuse_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_engine.report(tmp_path) == 2
    assert "not a bench-engine figures.json" in capsys.readouterr().err
    (tmp_path / "figures.json").write_text(json.dumps({"raw": {"python": 3}}))
    assert bench_engine.report(tmp_path) == 2
    assert benchswap.report(tmp_path / "figures.json") == 2
    assert "not a bench-swap figures.json" in capsys.readouterr().err
    # another bench's file: none of the figure groups this bench knows
    (tmp_path / "figures.json").write_text(json.dumps({"raw": {"vcpus=1": {"dup20": {}}}}))
    assert bench_engine.report(tmp_path) == 2
    assert "none of" in capsys.readouterr().err


def test_swap_summary_and_committed_report(capsys: pytest.CaptureFixture[str]) -> None:
    runs = {cfg: [{"repeat": i, "pool_peak_bytes": base * f, "workload_s": 20.0 * load,
                   **({"ns_per_offered": 180.0 + i} if cfg == "full" else {})}
                  for i, (base, load) in enumerate([(8e7, 1.0), (7e7, 1.2), (9e7, 0.9)])]
            for cfg, f in (("zswap", 1.0), ("pksm", 0.8), ("full", 0.7))}
    runs["full"][0]["pool_peak_bytes"] *= 1.01
    summary = benchswap.summarize({"dup20": runs})
    pool = next(s for s in summary if s["workload"] == "dup20" and s["figure"].startswith("pool"))
    assert pool["full_ratio"] == pytest.approx(0.7, abs=0.01)
    assert pool["met"] == stats.MET and "full/zswap, paired" in pool["judged"]["how"]
    ns = next(s for s in summary if s["workload"] == "dup20" and s["figure"].startswith("hook"))
    assert ns["met"] == stats.MET and ns["judged"]["how"] == "one sample, mean of 3"
    assert benchswap.report(BENCH / "swap-20261205T221544Z") == 0
    out = capsys.readouterr().out
    assert "vcpus=1" in out and "vcpus=2" in out and "full/zswap <= 0.85" in out
