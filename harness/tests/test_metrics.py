"""The named metric functions (pksmtb/metrics), the configurations axis of
a sweep spec, and a bench run by the sweep engine (benchsweep.py), on
captured runs and on runs made from a committed figures.json; no kernel."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_DATA
from pksmtb import (benchsweep, benchswap, config, metrics, paths, results, sampling,
                    sweep, sweepreport, sweepspec)
from pksmtb.metrics.rundata import RunData

CAPTURED = next((TEST_DATA / "runs" / "test-merge" / "ksm").iterdir())
COMMITTED = paths.TOP / "results" / "bench" / "swap-20261205T221544Z" / "figures.json"
SPEC = paths.TOP / "harness" / "sweeps" / "bench-swap.toml"
BENCH_SWAP_RUNS = TEST_DATA / "runs" / "bench-swap"


def committed_raw() -> dict[str, Any]:
    """The committed bench's raw figures, each run with its repeat (that
    file's runs are in repeat order: it is their position)."""
    raw: dict[str, Any] = results.read_json(COMMITTED)["raw"]
    for workloads in raw.values():
        for cfgs in workloads.values():
            for runs in cfgs.values():
                for i, r in enumerate(runs):
                    r["repeat"] = i
    return raw


def swap_run(d: Path, fig: dict[str, Any], seed: int = 0) -> Path:
    """A run directory whose swapbench event and samples hold what the
    committed run FIG measured (its figures.json keys): the counters the
    guest printed, split where the figure is a sum."""
    d.mkdir(parents=True)
    t0 = 100.0 + seed
    fields = {"rc": "0", "t0": f"{t0:.2f}", "t1": f"{t0 + fig['workload_s']:.2f}",
              "pool_peak": f"{fig['pool_peak_bytes']:.0f}",
              "stored_peak": f"{fig['stored_peak_pages']:.0f}",
              "written_back": f"{fig['written_back']:.0f}",
              "zswpout": f"{fig['zswpout']:.0f}",
              "poor": f"{fig['compress_calls'] - fig['zswpout']:.0f}", "cfail": "0",
              "afail": "0", "pswpout": f"{fig['pswpout']:.0f}",
              "pswpin": f"{fig['swapped_in'] - 1000:.0f}", "zswpin": "1000",
              "allocstall": f"{fig['allocstall']:.0f}"}
    (d / "events.json").write_text(json.dumps(
        {"events": [{"name": "filled", "fields": {"t_ms": "5000"}},
                    {"name": "swapbench", "fields": fields}]}))
    cols = ["t_ms", "ksm_pages_sharing"]
    first = {"t_ms": 0, "ksm_pages_sharing": 0}
    last = {"t_ms": 30000, "ksm_pages_sharing": 0}
    peak = {"t_ms": 15000, "ksm_pages_sharing": int(fig["pages_sharing_peak"])}
    if fig["daemon_cpu_s"]:         # PKSM ran: its counters
        extra = {"pksm_busy_ns": (1_000_000, 1_000_000 + round(fig["daemon_busy_s"] * 1e9)),
                 "pksm_cpu_ns": (7_000, 7_000 + round(fig["daemon_cpu_s"] * 1e9))}
        offered = fig.get("swap_offered", 0)
        extra["pksm_swap_offered"] = (0, offered)
        extra["pksm_swap_ns"] = (0, round(fig.get("ns_per_offered", 0) * offered))
        for k in ("swap_stable_merges", "swap_zero_merges", "swap_deferred", "swap_busy",
                  "pressure_batches"):
            extra[f"pksm_{k}"] = (0, int(fig.get(k, 0)))
        for col, (a, b) in extra.items():
            cols.append(col)
            first[col], peak[col], last[col] = a, (a + b) // 2, b
    with open(d / "timeseries.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows([first, peak, last])
    return d


# ---- the registry ----------------------------------------------------------------

def test_registry_names_and_unknown() -> None:
    assert set(benchswap.KEYS.values()) <= set(metrics.known())
    assert all(metrics.describe(m) for m in metrics.known())
    with pytest.raises(KeyError):
        metrics.compute(CAPTURED, ["no_such_metric"])
    with pytest.raises(ValueError, match="twice"):
        metrics.metric("swap_pool_peak_bytes", "again")(lambda r: 0.0)


def test_metrics_of_a_captured_run_without_the_event() -> None:
    # a run of another workload: no swapbench event, so no zswap figure;
    # PKSM's seconds are 0 (no PKSM counter on ksm) and pages_sharing its peak
    swap = [m for m in metrics.known() if m.startswith("swap_")]
    got = metrics.compute(CAPTURED, swap)
    rows = sampling.read_csv(CAPTURED / "timeseries.csv").rows
    assert got == {"swap_pages_sharing_peak": max(r["ksm_pages_sharing"] for r in rows),
                   "swap_pksm_busy_s": 0.0, "swap_pksm_cpu_s": 0.0}
    assert metrics.compute(CAPTURED.parent / "no-such-run", metrics.known()) == {}


@pytest.mark.parametrize("group,workload,cfg", [
    ("vcpus=1", "dup20", "full"), ("vcpus=1", "dup20", "zswap"),
    ("vcpus=2", "dup20x4", "full"), ("vcpus=2", "nodup", "pksm")])
def test_metrics_give_the_committed_figures(tmp_path: Path, group: str, workload: str,
                                            cfg: str) -> None:
    """Every run of the committed bench: the metrics, read from the event
    and samples that run printed, are the figures it recorded."""
    for fig in committed_raw()[group][workload][cfg]:
        run = swap_run(tmp_path / f"r{fig['repeat']}", fig, fig["repeat"])
        got = metrics.compute(run, list(benchswap.KEYS.values()))
        want = {k: float(v) for k, v in fig.items() if k in benchswap.KEYS}
        assert {k: got[m] for k, m in benchswap.KEYS.items() if m in got} == \
            pytest.approx(want), (group, workload, cfg, fig["repeat"])


def test_run_metrics_on_captured_runs() -> None:
    """Every run's derived figures (metrics/run.py), against the raw files:
    the saving integrated over time, PKSM's COW breaks; no worker, no
    throughput."""
    rows = sampling.read_csv(CAPTURED / "timeseries.csv").rows
    area = sum((sampling.saved_pages(a) + sampling.saved_pages(b)) / 2 * 4096 / 2**20
               * (b["t_ms"] - a["t_ms"]) / 1000 for a, b in zip(rows, rows[1:]))
    got = metrics.compute(CAPTURED, list(metrics.run.ALWAYS))
    assert list(got) == ["saved_mib_s"] and got["saved_mib_s"] == pytest.approx(area, abs=1e-3)
    full = BENCH_SWAP_RUNS / "dup20-full"
    with open(full / "timeseries.csv", newline="") as f:
        cow = [int(r["pksm_cow_breaks"]) for r in csv.DictReader(f)]
    assert metrics.compute(full, ["cow_breaks"]) == {"cow_breaks": cow[-1] - cow[0]}


def test_throughput_metrics_of_workers(tmp_path: Path) -> None:
    events = [{"name": "throughput", "fields": {"value": str(v), "build_s": str(b)}}
              for v, b in ((100.0, 1.0), (300.0, 2.0))]
    events += [{"name": "cowksm", "fields": {"when": "0", "n": "10"}},
               {"name": "cowksm", "fields": {"when": "1", "n": "25"}}]
    (tmp_path / "events.json").write_text(json.dumps({"events": events}))
    assert metrics.compute(tmp_path, list(metrics.run.ALWAYS)) == {
        "throughput": 400.0, "throughput_workers": 2.0, "build_s": 1.5, "cow_breaks": 15.0}


def test_rundata_reads_each_file_once_and_copes_with_none(tmp_path: Path) -> None:
    r = RunData(tmp_path)
    assert r.summary == {} and r.meta == {} and r.series.rows == []
    assert r.event("swapbench") is None and r.delta("x") is None and r.last("x") is None
    shutil.copytree(CAPTURED, tmp_path / "run")
    r = RunData(tmp_path / "run")
    assert r.series is r.series and r.event("filled") is not None
    last = r.last("ksm_full_scans")
    assert last is not None and r.delta("ksm_full_scans") == last - r.series.rows[0][
        "ksm_full_scans"]


# ---- configurations: a spec's named settings ----------------------------------------

def test_bench_swap_spec_cells() -> None:
    spec = sweepspec.load_spec(SPEC)
    assert tuple(spec.configs) == benchswap.CONFIGS
    cells = sweepspec.cells(spec)
    assert len(cells) == 12 and cells[0].id == "dup20.pksm.config=zswap.vcpus=2"
    assert sweepspec.settings(cells[0], spec.configs) == (["vcpus=2"], ["pksm.enabled=0"])
    assert sweepspec.settings(cells[2], spec.configs) == (["pksm.swap_dedup=1", "vcpus=2"], [])
    assert sweepspec.baseline_of(cells[2], spec) == cells[0]
    assert len(sweepspec.check(spec, paths.TOP / "results" / "sweeps" / "x",
                               need_builds=False)) == 36
    two = sweepspec.override(spec, repeats=1, vcpus=[1, 2])
    assert two.overrides == {"repeats": 1, "vcpus": ["1", "2"]}
    assert len(sweepspec.jobs(two, Path("/x"))) == 24 and spec.repeats == 3
    one = sweepspec.override(spec, only=["steady"])
    assert one.overrides == {"only": ["steady"]} and len(sweepspec.jobs(one, Path("/x"))) == 9
    bads: list[list[str]] = [[], ["steady", "steady"], ["nosuch"]]
    for bad in bads:
        with pytest.raises(config.ConfigError, match="--only"):
            sweepspec.override(spec, only=bad)


CONFIGS_SPEC = """\
[sweep]
scenarios = ["test-merge"]
variants = ["pksm"]
[configs.a]
kernel_args = ["pksm.enabled=0"]
[configs.b]
"pksm.probation_scans" = 0
[baseline]
config = "a"
"""


@pytest.mark.parametrize("change,needle", [
    (('[configs.b]\n"pksm.probation_scans" = 0', '[configs.b]\n"pksm.no_such" = 0'),
     "has no knob pksm.no_such"),
    (('"pksm.probation_scans" = 0', '"pksm.probation_scans" = 999'), "outside"),
    (('"pksm.probation_scans" = 0', 'vcpus = 2'), "knobs and kernel arguments only"),
    (('"pksm.probation_scans" = 0', 'nonsense = 2'), "has no knob ksm.nonsense"),
    (('"pksm.probation_scans" = 0', '"sys.x" = 2'), "not a knob"),
    (('kernel_args = ["pksm.enabled=0"]', 'kernel_args = "pksm.enabled=0"'),
     "list of strings"),
    (('config = "a"', 'config = "c"'), "not one of the axis's values"),
    (("[baseline]", '[grid]\nconfig = ["a"]\n[baseline]'), "[configs.NAME] tables"),
    (("[configs.a]", "[configs.'a b']"), "a name of letters"),
])
def test_bad_configs_refused(tmp_path: Path, change: tuple[str, str], needle: str) -> None:
    p = tmp_path / "s.toml"
    p.write_text(CONFIGS_SPEC.replace(*change))
    with pytest.raises(config.ConfigError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        sweepspec.check(sweepspec.load_spec(p), tmp_path / "sw", need_builds=False)


def test_override_refuses_bad_values() -> None:
    spec = sweepspec.load_spec(SPEC)
    for kw, needle in (({"repeats": 0}, "--repeat"), ({"vcpus": [9]}, "vcpus must be"),
                       ({"vcpus": [1, 1]}, "each count once")):
        with pytest.raises(config.ConfigError, match=needle):
            sweepspec.override(spec, **kw)  # type: ignore[arg-type]


def test_resume_with_other_overrides_refused(tmp_path: Path) -> None:
    spec = sweepspec.override(sweepspec.load_spec(SPEC), repeats=1)
    d = tmp_path / "sw"
    d.mkdir()
    (d / sweep.SPEC_FILE).write_text(SPEC.read_text())
    results.write_json(d / sweep.STATE_FILE, {"overrides": {"repeats": 2}})
    with pytest.raises(config.ConfigError, match="other settings"):
        sweep.open_sweep(spec, d, running=False)


# ---- a bench run by the sweep: the runs gathered as figures.json keeps them ----------

def test_gather_bench_swap_runs(tmp_path: Path) -> None:
    """The committed bench's vcpus=1 runs as a sweep's runs: gathered back
    into the same raw figures, and the table of targets from them (its
    workloads: the committed bench predates steady)."""
    old = ["dup20", "dup20x4", "nodup"]
    spec = sweepspec.override(sweepspec.load_spec(SPEC), repeats=3, vcpus=[1], only=old)
    d = tmp_path / "swap-x"
    sw = sweep.Sweep(spec, d, sweepspec.jobs(spec, d), {"jobs": {}})
    raw = committed_raw()["vcpus=1"]
    for job in sw.jobs:
        wl, cfg = Path(job.cell.scenario).stem, job.cell.get("config")
        fig = raw[wl][cfg][job.repeat - 1]
        run = swap_run(Path(job.root) / wl / "pksm" / "20261206T000000Z", fig, job.repeat)
        ok = not (wl == "nodup" and cfg == "full" and job.repeat == 2)
        results.write_json(run / "summary.json", {"exit_code": 0 if ok else 1,
                                                  "verdict": "pass" if ok else "FAIL"})
        results.write_json(run / "meta.json", {"host_load_start": [1.5, 1, 1],
                                               "host_load_end": [2.0, 1, 1]})
    g = benchsweep.gather(sw, benchswap.KEYS)
    assert list(g.raw) == ["vcpus=1"] and len(g.runs) == 27 and len(g.failed) == 1
    assert g.failed[0]["job"].startswith("nodup.pksm.config=full") and \
        g.failed[0]["why"] == "verdict FAIL"
    assert all(v == [1.5, 2.0] for v in g.load.values())
    got = g.raw["vcpus=1"]
    assert sorted(got) == sorted(raw) == old
    for wl in old:
        for cfg in benchswap.CONFIGS:
            want = [r for r in raw[wl][cfg]
                    if not (wl == "nodup" and cfg == "full" and r["repeat"] == 1)]
            assert [r["repeat"] for r in got[wl][cfg]] == [r["repeat"] for r in want]
            for a, b in zip(got[wl][cfg], want):
                assert {k: a[k] for k in b} == pytest.approx(b), (wl, cfg)
    # the same table as the committed figures give (but the left-out run)
    pool = next(s for s in benchswap.summarize(got) if s["workload"] == "dup20"
                and s["figure"].startswith("pool"))
    ref = next(s for s in benchswap.summarize(raw) if s["workload"] == "dup20"
               and s["figure"].startswith("pool"))
    assert pool["full_paired"] == ref["full_paired"] and pool["met"] == "met"
    # the sweep's own report asks the registered metrics of every run
    rep = sweepreport.build(sw)
    cell = next(c for c in rep["cells"] if c["id"] == "dup20.pksm.config=full.vcpus=1")
    assert cell["figures"]["swap_pool_peak_bytes"]["values"] == \
        [r["pool_peak_bytes"] for r in raw["dup20"]["full"]]
    assert cell["figures"]["swap_pool_peak_bytes"]["test"] == "paired"
    # the text names a registered metric by its description
    assert "zswap's pool at its largest" in sweepreport.text(rep)


@pytest.mark.parametrize("args,needle", [
    (["--repeat", "0"], "--repeat: a whole number"), (["--vcpus", "9"], "vcpus must be"),
    (["--vcpus", "1,1"], "given twice"), (["-j", "0"], "-j must be"),
    (["--report", "/nonexistent"], "not a bench-swap figures.json")])
def test_bench_swap_refuses_bad_arguments(args: list[str], needle: str) -> None:
    """Refused with a message and exit 2 before anything is pinned or booted."""
    import subprocess
    import sys
    p = subprocess.run([sys.executable, str(paths.TOP / "harness" / "bench_swap.py"), *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and needle in p.stderr, p.stderr


@pytest.mark.parametrize("cfg", ["zswap", "pksm", "full"])
def test_metrics_of_captured_bench_swap_runs(cfg: str) -> None:
    """Three runs of the bench (dup20, one vCPU: zswap alone, PKSM,
    PKSM with swap_dedup), their events.json and timeseries.csv as the
    guest wrote them: every metric against the same arithmetic done here
    on the raw files."""
    run = BENCH_SWAP_RUNS / f"dup20-{cfg}"
    ev = next(e["fields"] for e in json.loads((run / "events.json").read_text())["events"]
              if e["name"] == "swapbench")
    e = {k: float(v) for k, v in ev.items()}
    with open(run / "timeseries.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    first, last = rows[0], rows[-1]

    def delta_s(col: str) -> float:
        return round((int(last[col]) - int(first[col])) / 1e9, 4) if col in first else 0.0
    want = {"swap_pool_peak_bytes": e["pool_peak"], "swap_stored_peak_pages": e["stored_peak"],
            "swap_compress_calls": e["zswpout"] + e["poor"] + e["cfail"] + e["afail"],
            "swap_zswpout": e["zswpout"], "swap_pswpout": e["pswpout"],
            "swap_written_back": e["written_back"], "swap_swapped_in": e["pswpin"] + e["zswpin"],
            "swap_allocstall": e["allocstall"], "swap_workload_s": round(e["t1"] - e["t0"], 2),
            "swap_pksm_busy_s": delta_s("pksm_busy_ns"), "swap_pksm_cpu_s": delta_s("pksm_cpu_ns"),
            "swap_pages_sharing_peak": float(max(int(r["ksm_pages_sharing"]) for r in rows))}
    offered = float(last.get("pksm_swap_offered") or 0)
    if offered:
        want["swap_offered"] = offered
        want["swap_hook_ns_per_offered"] = round(float(last["pksm_swap_ns"]) / offered, 1)
        for m, col in (("swap_stable_merges", "pksm_swap_stable_merges"),
                       ("swap_zero_merges", "pksm_swap_zero_merges"),
                       ("swap_deferred", "pksm_swap_deferred"), ("swap_busy", "pksm_swap_busy"),
                       ("swap_pressure_batches", "pksm_pressure_batches")):
            want[m] = float(last[col])
    got = metrics.compute(run, [m for m in metrics.known() if m.startswith("swap_")])
    assert got == pytest.approx(want)
    # what each configuration is: no PKSM time alone, PKSM's daemon in the
    # others, the store-time check asked only with swap_dedup=1
    assert (got["swap_pksm_cpu_s"] == 0) == (cfg == "zswap")
    assert ("swap_offered" in got) == (cfg == "full")
    assert e["rc"] == 0 and got["swap_pool_peak_bytes"] > 0
