"""A bench run by the sweep engine: its spec run into results/bench/NAME-<UTC>/,
then its runs' metrics gathered the way the bench's figures.json keeps them.

The sweep does the running (repeats outermost, -j, resume, the builds
pinned in sweep.json, its own report.txt/csv/json beside); this module
adds what a bench's figures.json has always held (benchstats.py reads it):

    raw:   "vcpus=N" -> workload (the scenario's file stem) -> config ->
           one dict per run: each metric under the bench's own key, and
           'repeat' (from 0), which pairs the configurations' runs
    _meta: the pinned builds (benchbuilds.Pins), the command line, the
           repeats, every run directory and the host's 1-minute load as
           it started and ended (from its meta.json), the runs that failed
           or booted another build than the pinned one

A run that failed, or booted another build than the one pinned, is left
out of raw and named in _meta; the bench then exits 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import benchbuilds, kernel, metrics, paths, results, sweep, sweepreport, sweepspec
from .sweepspec import CONFIG_AXIS, VCPUS_AXIS

BENCH = paths.TOP / "results" / "bench"
Raw = dict[str, dict[str, dict[str, list[dict[str, Any]]]]]


def out_dir(prefix: str) -> Path:
    """results/bench/PREFIX-<UTC>, not made yet."""
    return BENCH / f"{prefix}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def pin(spec: sweepspec.Spec) -> benchbuilds.Pins:
    """The builds the spec boots (sweep.kernel_names), pinned now
    (kernel.BuildMissing if one is not built)."""
    builds = []
    for name in sweep.kernel_names(sweepspec.jobs(spec, BENCH)):
        variant, _, flavour = name.partition("-")
        builds.append(kernel.find_kernel(variant, flavour))
    return benchbuilds.Pins.of(builds)


@dataclass
class Gathered:
    """The runs of a finished (or stopped) bench sweep, as figures.json keeps them."""

    raw: Raw = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)          # job key -> run dir
    load: dict[str, list[float]] = field(default_factory=dict)  # job key -> [start, end]
    failed: list[dict[str, str]] = field(default_factory=list)  # job, run, why


def gather(sw: sweep.Sweep, keys: dict[str, str]) -> Gathered:
    """Every finished run's metrics under the bench's KEYS (bench key ->
    metric name), grouped by vCPU count, workload and config."""
    g = Gathered()
    mismatched = {m["job"]: m["why"] for m in sweepreport.mismatches(sw)}
    names = list(keys.values())
    for job, run in sweep.iter_runs(sw):
        rel = str(run.relative_to(sw.dir)) if run.is_relative_to(sw.dir) else str(run)
        g.runs[job.key] = rel
        meta = results.read_json(run / "meta.json") if (run / "meta.json").is_file() else {}
        start, end = meta.get("host_load_start") or [None], meta.get("host_load_end") or [None]
        g.load[job.key] = [start[0], end[0]]
        verdict = results.verdict_of(run)
        if verdict != "pass" or job.key in mismatched:
            g.failed.append({"job": job.key, "run": rel,
                             "why": mismatched.get(job.key) or f"verdict {verdict}"})
            continue
        values = metrics.compute(run, names)
        d: dict[str, Any] = {k: values[m] for k, m in keys.items() if m in values}
        d["repeat"] = job.repeat - 1
        d["run"] = rel
        coords = job.cell.to_json()
        group = f"vcpus={coords.get(VCPUS_AXIS, paths.DEFAULT_VCPUS)}"
        g.raw.setdefault(group, {}).setdefault(Path(job.cell.scenario).stem, {}) \
            .setdefault(coords.get(CONFIG_AXIS, job.cell.variant), []).append(d)
    for workloads in g.raw.values():
        for cfgs in workloads.values():
            for runs in cfgs.values():
                runs.sort(key=lambda r: int(r["repeat"]))
    return g


def changed(pins: benchbuilds.Pins, failed: list[dict[str, str]],
            sw: sweep.Sweep) -> None:
    """Mark in PINS the boots of another build than the one pinned (the
    sweep's own check, sweep.build_mismatch), as a bench's _meta says."""
    bad = {m["job"]: m for m in sweepreport.mismatches(sw)}
    for f in failed:
        m = bad.get(f["job"])
        if m:
            pins.changed.append({"key": f["job"], "build": m["why"].split(" ")[0],
                                 "detail": f"{f['job']}: {m['why']}: the kernel was rebuilt "
                                           "under the bench; the boot is left out",
                                 "utc": results.utc_now()})


def meta(spec: sweepspec.Spec, pins: benchbuilds.Pins, g: Gathered,
         elapsed_s: float, extra: dict[str, Any]) -> dict[str, Any]:
    """figures.json's _meta."""
    return {**pins.to_json(), "command_line": results.command_line(),
            "engine": "sweep", "spec": str(spec.path.relative_to(paths.TOP))
            if spec.path.is_relative_to(paths.TOP) else str(spec.path),
            "overrides": spec.overrides, "repeat": spec.repeats,
            "vcpus": [int(v) for v in spec.axes.get(VCPUS_AXIS, [str(paths.DEFAULT_VCPUS)])],
            "configs": {k: c.to_json() for k, c in spec.configs.items()},
            **extra, "runs": g.runs, "host_load_1min_before_after": g.load,
            "failed_runs": g.failed,
            "elapsed_s": round(elapsed_s)}
