"""Sweeps: spec validation, the report on captured runs, and (boot) a tiny
grid run in parallel, stopped and resumed, on a local pool and on a local
Dask cluster running a real program with the daemon on and off."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TEST_DATA, built
from pksmtb import cli, config, paths, results, stats, sweep, sweepreport, sweepspec

CAPTURED = next((TEST_DATA / "runs" / "test-merge" / "ksm").iterdir())
TINY_SCENARIO = """\
[scenario]
description = "sweep test: 2 x 4 MiB duplicates, 3 s"
mem = "96M"
timeout = 120
sample_interval_ms = 100
[knobs.ksm]
sleep_millisecs = 10
use_zero_pages = 1
run = 1
[[workload]]
program = "dupalloc"
[workload.options]
procs = 2
mib = 4
dup = 70
zero = 20
hold = 3
[expect]
exit = 0
verify = "ok"
"""


def write_spec(tmp: Path, text: str, name: str = "spec.toml") -> Path:
    (tmp / "tiny.toml").write_text(TINY_SCENARIO)
    p = tmp / name
    p.write_text(text)
    return p


GOOD = """\
[sweep]
scenarios = ["tiny.toml"]
variants = ["pksm"]
repeats = 2
[grid]
"pksm.probation_scans" = [0, 3]
[baseline]
"pksm.probation_scans" = 3
"""


# ---- the spec, refused before anything boots -----------------------------------------

@pytest.mark.parametrize("text,needle", [
    (GOOD.replace('"pksm.probation_scans" = [0, 3]', '"pksm.probation_scans" = [0, 255]')
     .replace('"pksm.probation_scans" = 3\n', ""), "outside 0..254"),
    (GOOD.replace('"pksm.probation_scans"', '"pksm.no_such_knob"')
     .replace("[baseline]\n", "").replace('"pksm.no_such_knob" = 3\n', ""),
     "has no knob pksm.no_such_knob"),
    (GOOD.replace('variants = ["pksm"]', 'variants = ["ksm"]'), "ksm has no knob pksm.probation"),
    (GOOD.replace("[0, 3]", "[]"), "empty"),
    ('[sweep]\nscenarios = ["tiny.toml"]\nvariants = ["pksm"]\n', "empty grid"),
    (GOOD.replace('["tiny.toml"]', '["no-such-scenario"]'), "no scenario named"),
    (GOOD.replace("repeats = 2", "repeats = 0"), "repeats"),
    (GOOD.replace("repeats = 2", "repeat = 2"), "unknown key"),
    (GOOD.replace('"pksm.probation_scans" = 3', '"pksm.probation_scans" = 5'),
     "not one of the axis's values"),
    (GOOD.replace("[baseline]", "[baseline]\ndaemon = \"off\""), "not a [grid] axis"),
    (GOOD.replace("[grid]\n", '[grid]\ndaemon = ["on", "maybe"]\n'), "not one of on, off"),
    (GOOD.replace("[grid]", '[grid]\n"ksm.pages_to_scan" = [-1]'), "outside 0..16777216"),
    (GOOD.replace("[grid]", '[grid]\n"ksm.advisor_mode" = ["fast"]'), "not one of none"),
    (GOOD.replace("[grid]\n", "[grid]\nvcpus = [1, 9]\n"), "vcpus must be 1..8"),
    (GOOD.replace("[grid]\n", "[grid]\nvcpus = [1, 1]\n"), "a value appears twice"),
    ("[sweep\n", "not valid TOML"),
    (GOOD.replace("repeats = 2", 'repeats = 2\nmetrics = ["speed"]'), "unknown figure 'speed'"),
])
def test_bad_spec_refused_before_boot(tmp_path: Path, text: str, needle: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, text)
    out = tmp_path / "sweep"
    assert cli.main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("error: "), err
    assert not out.exists()


def test_missing_spec_and_bad_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli.main(["sweep", str(write_spec(tmp_path, GOOD)), "-j", "0"]) == 2


def test_cells_jobs_settings(tmp_path: Path) -> None:
    spec = sweepspec.load_spec(write_spec(tmp_path, GOOD.replace("[grid]\n",
                                                            '[grid]\ndaemon = ["on", "off"]\n')))
    cells = sweepspec.cells(spec)
    assert len(cells) == 4
    # axes in the spec's order, the last varying fastest
    assert cells[0].label == "tiny/pksm daemon=on pksm.probation_scans=0"
    assert cells[0].id == "tiny.pksm.daemon=on.probation_scans=0"
    off = cells[2]
    assert off.label == "tiny/pksm daemon=off pksm.probation_scans=0"
    assert sweepspec.settings(off) == (["pksm.probation_scans=0"], ["pksm.enabled=0"])
    assert sweepspec.baseline_of(off, spec) == cells[3]
    ksm_off = sweepspec.Cell((("scenario", "x"), ("variant", "ksm"), ("daemon", "off")))
    assert sweepspec.settings(ksm_off) == (["ksm.run=0"], [])
    # the guest's vCPUs are an axis too: a --set, kept by the baseline
    smp = sweepspec.load_spec(write_spec(tmp_path, GOOD.replace("[grid]\n",
                                                           "[grid]\nvcpus = [1, 2]\n")))
    two = sweepspec.cells(smp)[2]
    assert two.label == "tiny/pksm vcpus=2 pksm.probation_scans=0"
    assert sweepspec.settings(two) == (["vcpus=2", "pksm.probation_scans=0"], [])
    assert sweepspec.baseline_of(two, smp) == sweepspec.cells(smp)[3]
    assert len(sweepspec.check(smp, tmp_path / "sw2", need_builds=False)) == 8
    # an option of the scenarios' real programs is an axis: a --set, checked
    # before anything boots as the scenario file's own would be
    real = GOOD.replace('["tiny.toml"]', '["real-pyserve"]').replace(
        "[grid]\n", '[grid]\n"workload.domains" = [2, 4]\n')
    dom = sweepspec.load_spec(write_spec(tmp_path, real, "real.toml"))
    two_dom = sweepspec.cells(dom)[0]
    assert two_dom.label == "real-pyserve/pksm workload.domains=2 pksm.probation_scans=0"
    assert sweepspec.settings(two_dom) == (["workload.domains=2", "pksm.probation_scans=0"], [])
    assert len(sweepspec.check(dom, tmp_path / "sw3", need_builds=False)) == 8
    for bad, needle in (("[2, 9]", "outside 0..8"), ('["two"]', "not a number")):
        badspec = sweepspec.load_spec(write_spec(tmp_path, real.replace("[2, 4]", bad),
                                                 "bad.toml"))
        with pytest.raises(config.ConfigError, match=needle):
            sweepspec.check(badspec, tmp_path / "sw4", need_builds=False)
    with pytest.raises(config.ConfigError, match="expected workload.OPTION"):
        sweepspec.load_spec(write_spec(tmp_path, real.replace('"workload.domains"',
                                                              '"workload.Dom-ains"'), "b2.toml"))
    jobs = sweepspec.jobs(spec, tmp_path / "sw")
    # repeat-major: every cell once, then again
    assert [j.repeat for j in jobs] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert jobs[6].root == str(tmp_path / "sw" / "runs" / off.id / "r2")


# ---- the report, on captured runs ---------------------------------------------------

def fake_run(job: sweepspec.Job, saved: float, code: int = 0, finished: bool = True) -> Path:
    d = Path(job.root) / "test-merge" / "ksm" / f"2026010{job.repeat}T000000Z-{saved}"
    shutil.copytree(CAPTURED, d)
    if finished:
        s = results.read_json(d / "summary.json")
        s.update(peak_saved_mib=saved, exit_code=code, verdict="pass" if code == 0 else "FAIL")
        results.write_json(d / "summary.json", s)
    else:
        (d / "summary.json").unlink()
    return d


def test_parallel_default_gives_every_vcpu_a_core(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """-j's default keeps every guest vCPU (a host thread) on a core of its
    own; a -j that oversubscribes the host runs with a warning."""
    smp = sweepspec.load_spec(write_spec(tmp_path, GOOD.replace("[grid]\n",
                                                           "[grid]\nvcpus = [1, 2]\n")))
    one = sweepspec.load_spec(write_spec(tmp_path, GOOD, "one.toml"))
    jobs = sweepspec.jobs(smp, tmp_path / "sw")
    assert sweep.max_vcpus(jobs) == 2
    monkeypatch.setattr(sweep, "host_cores", lambda: 2)
    assert sweep.parallel_default(sweep.max_vcpus(jobs)) == 1
    assert sweep.parallel_default(1) == 2
    assert sweep.parallel_default(4) == 1
    assert sweep.oversubscribed(1, 2) is None and sweep.oversubscribed(2, 1) is None
    warn = sweep.oversubscribed(2, 2)
    assert warn and "4 vCPU threads on 2 host cores" in warn and "-j 1" in warn
    tiny_vcpus = config.load_scenario(str(tmp_path / "tiny.toml")).vcpus
    assert sweep.max_vcpus(sweepspec.jobs(one, tmp_path / "sw1")) == tiny_vcpus


def test_report_and_resume_state(tmp_path: Path) -> None:
    spec = sweepspec.load_spec(write_spec(tmp_path, GOOD.replace("repeats = 2", "repeats = 3")))
    d = tmp_path / "sw"
    sw = sweep.Sweep(spec, d, sweepspec.jobs(spec, d), {"jobs": {}})
    values = {"0": [30.0, 31.0, 32.0], "3": [20.0, 21.0, 19.0]}
    for job in sw.jobs:
        fake_run(job, values[job.cell.get("pksm.probation_scans")][job.repeat - 1])
    # an interrupted later attempt and an unfinished one change nothing
    fake_run(sw.jobs[0], 99.0, code=143)
    fake_run(sw.jobs[1], 98.0, finished=False)
    assert sweep.finished_run(sw.jobs[0]) is not None
    assert sweep.running_run(sw.jobs[1]) is not None
    rep = sweepreport.write(sw)
    cell0 = rep["cells"][0]
    assert cell0["coords"]["pksm.probation_scans"] == "0" and not cell0["is_baseline"]
    cmp = cell0["figures"]["peak_saved_mib"]["vs_baseline"]
    assert cmp["change_pct"] == pytest.approx(55.0)     # 31 against 20
    assert cmp["welch_significant"] and cmp["ranges_disjoint"]
    assert cmp["p"] == pytest.approx(stats.welch([30, 31, 32], [20, 21, 19]).p)  # type: ignore
    # the cells pair up by repeat: 30/20, 31/21, 32/19
    fig = cell0["figures"]["peak_saved_mib"]
    assert fig["repeats"] == [1, 2, 3] and fig["test"] == "paired"
    ref = stats.paired_ratio([30.0, 31.0, 32.0], [20.0, 21.0, 19.0])
    assert fig["paired"]["ratio"] == pytest.approx(ref.ratio)
    assert fig["paired"]["lo"] == pytest.approx(ref.lo) and fig["paired"]["repeats"] == [1, 2, 3]
    assert fig["p"] == pytest.approx(ref.p) and fig["mde_pct"] == pytest.approx(ref.mde_pct)
    # the family: every comparison with a p, adjusted (here a family of one or more)
    assert rep["family"]["comparisons"] >= 1
    assert fig["p_holm"] >= fig["p"] and fig["p_bh"] >= fig["p"]
    assert rep["cells"][1]["is_baseline"]
    txt = (d / "report.txt").read_text()
    assert "31.00 ± 1.00 " in txt
    assert "+55.0%" in txt and "base" in txt
    assert ref.brief() in txt and "paired" in txt
    rows = (d / "report.csv").read_text().splitlines()
    assert rows[0].startswith("cell,scenario,variant,pksm.probation_scans,metric,n,mean")
    assert rows[0].endswith(",test,unpaired_why,pairs,paired_ratio,paired_lo,paired_hi,boot_lo,"
                            "boot_hi,p,p_holm,p_bh,holm_significant,bh_significant,mde_pct")
    assert len(rows) == 1 + 2 * len(spec.metrics)
    assert json.loads((d / "report.json").read_text())["sweep"] == "spec"
    assert (d / "plots" / "peak_saved_mib.png").stat().st_size > 1000
    # everything finished: nothing to run, nothing boots
    out = sweep.execute(sw, 2)
    assert (out.ran, out.kept, out.failed) == (0, 6, [])
    # a job whose latest finished run failed is kept, and counted as failed
    fake_run(sw.jobs[2], 99.5, code=1)
    out = sweep.execute(sw, 2)
    assert (out.ran, out.kept, out.failed) == (0, 6, [sw.jobs[2].key])


def test_the_report_names_what_ran_its_boots(tmp_path: Path) -> None:
    """report.txt counts the boots in its figures by harness revision and
    host CPU model (their meta.json), and warns when the host CPU differs
    among them; a boot of an older harness without the fields is counted
    as unknown, not left out, and is not a second CPU model."""
    spec = sweepspec.load_spec(write_spec(tmp_path, GOOD))
    d = tmp_path / "sw"
    sw = sweep.Sweep(spec, d, sweepspec.jobs(spec, d), {"jobs": {}})
    runs = [fake_run(job, 10.0 + i) for i, job in enumerate(sw.jobs)]
    for i, run in enumerate(runs[:-1]):
        meta = results.read_json(run / "meta.json")
        meta.update(harness_revision="0123456789abcdef" + ("-dirty" if i == 0 else ""),
                    host_cpu_model="CPU A")
        results.write_json(run / "meta.json", meta)
    sweepreport.write(sw)
    txt = (d / "report.txt").read_text()
    n = len(runs)
    assert (f"boots in the figures: {n} boots; harness 0123456789 ({n - 2}), "
            f"0123456789-dirty (1), ? (1); host CPU CPU A ({n - 1}), unknown (1)") in txt
    # a boot that recorded no CPU model is no second model
    assert "host CPU models" not in txt
    meta = results.read_json(runs[-1] / "meta.json")
    meta.update(host_cpu_model="CPU B")
    results.write_json(runs[-1] / "meta.json", meta)
    sweepreport.write(sw)
    txt = (d / "report.txt").read_text()
    assert "WARNING: the boots ran on 2 host CPU models" in txt
    meta.update(harness_revision="0123456789abcdef", host_cpu_model="CPU A")
    results.write_json(runs[-1] / "meta.json", meta)
    sweepreport.write(sw)
    txt = (d / "report.txt").read_text()
    assert f"host CPU CPU A ({n})" in txt and "host CPU models" not in txt


def old_report() -> dict[str, object]:
    """A report.json as sweeps wrote it before values kept their repeat:
    the repeat only in each run's directory name."""
    def sample(v: list[float]) -> object:
        s = stats.Sample.of(v)
        return s.__dict__ if s else None

    def cell(cid: str, base: str, vals: dict[str, list[float]], reps: list[int]) -> object:
        return {"id": cid, "label": cid, "coords": {"scenario": "s", "variant": "pksm",
                                                   "daemon": cid.split("=")[1]},
                "baseline": base, "is_baseline": cid == base, "failed_or_missing": 0,
                "runs": [f"runs/{cid}/r{k}/s/pksm/2026010{k}T000000Z" for k in reps],
                "figures": {m: {"values": v, "sample": sample(v),
                                "vs_baseline": {"stale": True}} for m, v in vals.items()}}
    # throughput: the host's load moves both cells alike, repeat by repeat;
    # saved: the baseline saves nothing; t90: one run of 'on' has no value;
    # none: no run has a value
    return {"sweep": "old", "description": "", "alpha": 0.05, "repeats": 3,
            "axes": {"daemon": ["on", "off"]}, "baseline": {"daemon": "off"},
            "metrics": ["throughput", "saved", "t90", "none"],
            "cells": [cell("daemon=on", "daemon=off",
                           {"throughput": [95.0, 152.0, 66.5], "saved": [10.0, 11.0, 12.0],
                            "t90": [1.0, 2.0], "none": []}, [1, 2, 3]),
                      cell("daemon=off", "daemon=off",
                           {"throughput": [100.0, 160.0, 70.0], "saved": [0.0, 0.0, 0.0],
                            "t90": [1.5, 1.0, 2.0], "none": []}, [1, 2, 3])]}


def test_reanalyze_an_old_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "old"
    d.mkdir()
    (d / "report.json").write_text(json.dumps(old_report()))
    assert cli.main(["sweep-report", str(d)]) == 0
    rep = json.loads((d / "report.json").read_text())
    on = rep["cells"][0]["figures"]
    # the repeats came from the run directories: paired, all 3 ratios 0.95
    # (all equal: no spread, so no interval and no p, and said so)
    tp = on["throughput"]
    assert tp["repeats"] == [1, 2, 3] and tp["test"] == "paired"
    assert tp["paired"]["ratio"] == pytest.approx(0.95) and tp["paired"]["lo"] is None
    assert "all 3 ratios equal" in tp["paired"]["reason"] and tp["p"] is None
    assert tp["vs_baseline"]["p"] is not None and "stale" not in tp["vs_baseline"]
    # a zero baseline has no ratio: Welch, and why
    assert on["saved"]["test"] == "welch" and "no log ratio" in on["saved"]["unpaired_why"]
    # 2 values for 3 runs: which repeat each is from is unknown, so unpaired
    assert on["t90"]["repeats"] is None and on["t90"]["test"] == "welch"
    assert "which repeat" in on["t90"]["unpaired_why"]
    # no value at all: no repeat to wonder about, and no comparison
    assert on["none"]["repeats"] == [] and on["none"]["p"] is None
    assert on["none"]["unpaired_why"].startswith("0 repeat(s)")
    # the family: the comparisons that have a p, adjusted
    fam = [f for f in on.values() if f["p"] is not None]
    assert rep["family"]["comparisons"] == len(fam) == 2
    assert all(f["p_holm"] >= f["p"] for f in fam)
    txt = capsys.readouterr().out
    assert txt == (d / "report.txt").read_text()
    assert "welch (unpaired), 1 cell(s): the report does not say which repeat" in txt
    assert (d / "report.csv").read_text().count("\n") == 1 + 2 * 4


def test_reanalyze_refuses_what_is_not_a_report(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep-report", str(tmp_path)]) == 2
    assert "no sweep report" in capsys.readouterr().err
    (tmp_path / "report.json").write_text('{"cells": 3}')
    assert cli.main(["sweep-report", str(tmp_path)]) == 2
    assert "not a sweep report" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{")
    assert cli.main(["sweep-report", str(tmp_path)]) == 2
    assert (tmp_path / "report.json").read_text() == "{"     # left as it was


def test_paired_rescues_a_change_the_load_hides() -> None:
    rep = sweepreport.reanalyze(old_report())
    # shared load, 5 % slower each repeat but for a little noise
    rep["cells"][0]["figures"]["throughput"]["values"] = [95.0, 153.0, 66.0]
    rep = sweepreport.analyze(rep)
    tp = rep["cells"][0]["figures"]["throughput"]
    assert tp["test"] == "paired" and tp["p"] < 0.05
    assert tp["vs_baseline"]["p"] > 0.5               # Welch sees nothing
    assert tp["paired"]["hi"] < 1.0


def test_sweep_dir_of_another_spec_refused(tmp_path: Path) -> None:
    d = tmp_path / "sw"
    d.mkdir()
    (d / sweep.SPEC_FILE).write_text("# another\n")
    spec = sweepspec.load_spec(write_spec(tmp_path, GOOD))
    with pytest.raises(config.ConfigError, match="another spec"):
        sweep.open_sweep(spec, d)


# ---- boots --------------------------------------------------------------------------

def wait_for(cond: object, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if callable(cond) and cond():
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting")


@pytest.mark.boot
def test_sweep_parallel_stopped_and_resumed(tmp_path: Path) -> None:
    """2 cells x 2 repeats at -j2: SIGTERM after the first job ends (143,
    run directories kept), the same command again runs only the rest."""
    built("pksm")
    spec = write_spec(tmp_path, GOOD)
    out = tmp_path / "sweep"
    argv = [sys.executable, str(paths.TOP / "harness" / "pksmtb.py"), "sweep", str(spec),
            "-j", "2", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def one_done() -> bool:
            st = out / sweep.STATE_FILE
            return st.is_file() and bool(results.read_json(st).get("jobs"))
        wait_for(one_done, 300)
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, text
    assert "run the same command again" in text
    first = results.read_json(out / sweep.STATE_FILE)["jobs"]
    assert 1 <= len(first) < 4
    # no UML process of the sweep is left
    assert str(out) not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                          text=True).stdout
    assert cli.main(["sweep", str(spec), "-j", "2", "--out", str(out)]) == 0
    state = results.read_json(out / sweep.STATE_FILE)
    assert len(state["jobs"]) == 4 and all(j["exit_code"] == 0 for j in state["jobs"].values())
    for key, job in first.items():           # kept, not run again
        assert state["jobs"][key]["run_dir"] == job["run_dir"]
    assert len(state["invocations"]) == 2 and state["invocations"][0]["harness_revision"]
    assert state["builds"] and all(j["build_mismatch"] is None for j in state["jobs"].values())
    rep = results.read_json(out / "report.json")
    for c in rep["cells"]:
        assert c["figures"]["peak_saved_mib"]["sample"]["n"] == 2, c
    assert (out / "spec.toml").read_text() == spec.read_text()
    assert (out / "plots" / "saved_mib_s.png").is_file()


REAL = """\
[sweep]
description = "co-runner slowdown of a real program, tiny"
scenarios = ["real.toml"]
repeats = 1
metrics = ["throughput", "build_s", "peak_saved_mib", "cow_breaks", "daemon_busy_s"]
[grid]
daemon = ["on", "off"]
[baseline]
daemon = "off"
"""


@pytest.mark.boot
def test_sweep_on_dask_real_program(tmp_path: Path) -> None:
    """A local Dask cluster of two worker processes runs a real program
    (host python3, pyserve) with PKSM on and off; the report has the
    throughput of both and the co-runner slowdown, meta.json the packages."""
    distributed = pytest.importorskip("distributed")
    built("pksm")
    text = (paths.SCENARIOS / "real-pyserve.toml").read_text()
    # one vCPU each: the cluster's two boots run at once on the host's two
    # cores (two 2-vCPU guests took turns on them and starved pksmd)
    text = (text.replace("workers = 4", "workers = 2").replace("seconds = 12", "seconds = 6")
            .replace("records = 20000", "records = 5000")
            .replace('mem = "768M"', 'mem = "384M"\nvcpus = 1'))
    (tmp_path / "real.toml").write_text(text)
    spec = tmp_path / "real-sweep.toml"
    spec.write_text(REAL)
    out = tmp_path / "sweep"
    env = {k: os.environ.get(k) for k in ("PYTHONPATH",)}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert cli.main(["sweep", str(spec), "--dask", cluster.scheduler_address,
                         "--out", str(out)]) == 0
    assert env == {k: os.environ.get(k) for k in env}
    rep = results.read_json(out / "report.json")
    on, off = rep["cells"]
    assert on["coords"]["daemon"] == "on" and off["is_baseline"]
    assert on["figures"]["throughput"]["sample"]["mean"] > 0
    assert off["figures"]["throughput"]["sample"]["mean"] > 0
    # pksmd ran and merged something (how much in 6 s is a benchmark's figure)
    assert on["figures"]["daemon_busy_s"]["sample"]["mean"] > 0
    assert off["figures"]["daemon_busy_s"]["sample"]["mean"] == 0
    assert on["figures"]["peak_saved_mib"]["sample"]["mean"] > 0
    assert off["figures"]["peak_saved_mib"]["sample"]["mean"] == 0
    assert "co-runner slowdown" in (out / "report.txt").read_text()
    run = out / on["runs"][0]
    meta = results.read_json(run / "meta.json")
    assert meta["host_packages"]["libsqlite3-0"] not in ("", "not installed")
    assert meta["host_packages"]["python3"] not in ("", "not installed")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_lines_one_per_running_boot(tmp_path: Path) -> None:
    spec = sweepspec.load_spec(write_spec(tmp_path, GOOD))
    jobs = sweepspec.jobs(spec, tmp_path / "sw")
    fake_run(jobs[0], 1.0, finished=False)       # under way
    started = fake_run(jobs[1], 1.0, finished=False) / "meta.json"
    os.utime(started, (time.time() - 5, time.time() - 5))   # started 5 s ago
    out = Tty()
    board = sweep.Board(len(jobs), out)
    board.update(0, 0, jobs)
    board.update(1, 0, jobs)
    text = out.getvalue()
    assert text.count("sweep: 0/4 done (0 failed), 2 running") == 1
    assert "\x1b[3F\x1b[J" in text              # the second drawing replaces the first
    line = re.search(r"\n  tiny/pksm pksm.probation_scans=3 r1: +([0-9.]+) s, saved +0.0 MiB\n",
                     text)
    assert line and 5 <= float(line.group(1)) < 60
    board.finished(jobs[0], sweep.JobEnd("somewhere", 0))
    assert out.getvalue().endswith("sweep: tiny/pksm pksm.probation_scans=0 r1: exit 0 "
                                   "-> somewhere\n")


def test_one_sweep_at_a_time_and_report_only_reads(tmp_path: Path) -> None:
    spec = sweepspec.load_spec(write_spec(tmp_path, GOOD))
    d = tmp_path / "sw"
    with pytest.raises(config.ConfigError, match="no sweep there yet"):
        sweep.open_sweep(spec, d, running=False)
    d.mkdir()
    fd = sweep._lock(d)                          # a sweep running there
    try:
        with pytest.raises(config.ConfigError, match="another sweep is running"):
            sweep._lock(d)
    finally:
        os.close(fd)
    sweep._lock(d)
