"""Every run's derived figures (a sweep reports them whatever its spec
asks for; sweepreport.run_figures): what a real program's workers said,
COW breaks, the saving integrated over time."""

from __future__ import annotations

import statistics

from .. import sampling
from . import metric
from .rundata import RunData

# Computed for every run a sweep reports, beside summary.json's figures.
ALWAYS = ("cow_breaks", "throughput", "throughput_workers", "build_s", "saved_mib_s")


@metric("throughput", "the sum over a real program's workers of their PKSMTB-EVENT "
        "throughput value=... (requests or operations per second)")
def throughput(run: RunData) -> float | None:
    tp = run.console.events_named("throughput")
    return sum(e.num("value") for e in tp) if tp else None


@metric("throughput_workers", "how many workers reported a throughput")
def throughput_workers(run: RunData) -> float | None:
    tp = run.console.events_named("throughput")
    return float(len(tp)) if tp else None


@metric("build_s", "the workers' mean build time (s; their throughput events' build_s)")
def build_s(run: RunData) -> float | None:
    builds = [e.num("build_s") for e in run.console.events_named("throughput")
              if "build_s" in e.fields]
    return statistics.fmean(builds) if builds else None


@metric("cow_breaks", "COW breaks of merged pages over the run: PKSM's cow_breaks "
        "counter, else /proc/vmstat cow_ksm between the cowksm events when=0 and when=1")
def cow_breaks(run: RunData) -> float | None:
    pksm = run.delta("pksm_cow_breaks")
    if pksm is not None:
        return pksm
    cowksm = {e.fields.get("when"): e.num("n") for e in run.console.events_named("cowksm")}
    if "0" in cowksm and "1" in cowksm:
        return cowksm["1"] - cowksm["0"]
    return None


@metric("fake_merges", "pages PKSM made a KSM page of their own over the run (fake merging: "
        "its fake_merges counter; None on a kernel without it)")
def fake_merges(run: RunData) -> float | None:
    return run.delta("pksm_fake_merges")


@metric("saved_mib_s", "saved MiB integrated over the run's seconds (trapezoids between samples)")
def saved_mib_s(run: RunData) -> float | None:
    rows = run.series.rows
    if len(rows) < 2:
        return None
    area = 0.0
    for a, b in zip(rows, rows[1:]):
        mib = (sampling.saved_pages(a) + sampling.saved_pages(b)) / 2 \
            * sampling.PAGE_SIZE / sampling.MIB
        area += mib * (b["t_ms"] - a["t_ms"]) / 1000
    return round(area, 3)
