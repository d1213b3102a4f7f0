"""The zswap bench's metrics (harness/sweeps/bench-swap.toml).

Its scenarios (harness/sweeps/bench-swap/) run dupalloc beside a loop
that keeps the peaks of zswap's pool and stored pages, then print every
counter as one event:

    PKSMTB-EVENT swapbench rc=.. t0=.. t1=.. pool_peak=.. stored_peak=..
        written_back=.. poor=.. cfail=.. afail=.. zswpout=.. zswpin=..
        pswpout=.. pswpin=.. allocstall=..

(t0, t1: /proc/uptime around the workload; poor, cfail, afail: zswap's
reject_compress_poor, reject_compress_fail, reject_alloc_fail; the rest
/proc/vmstat's, allocstall summed over its allocstall_* lines).  PKSM's
own counters come from the samples (timeseries.csv).
"""

from __future__ import annotations

from . import metric
from .rundata import RunData

EVENT = "swapbench"


def _field(run: RunData, *keys: str) -> float | None:
    """The sum of the swapbench event's KEYS; None without the event."""
    e = run.event(EVENT)
    if e is None or not all(k in e for k in keys):
        return None
    return sum(e[k] for k in keys)


@metric("swap_pool_peak_bytes", "zswap's pool at its largest (bytes, sampled every 0.2 s)")
def pool_peak_bytes(run: RunData) -> float | None:
    return _field(run, "pool_peak")


@metric("swap_stored_peak_pages", "pages stored in zswap at the most")
def stored_peak_pages(run: RunData) -> float | None:
    return _field(run, "stored_peak")


@metric("swap_compress_calls", "pages zswap tried to compress: stored + rejected "
        "(compress poor, compress fail, alloc fail)")
def compress_calls(run: RunData) -> float | None:
    return _field(run, "zswpout", "poor", "cfail", "afail")


@metric("swap_zswpout", "pages stored in zswap (vmstat zswpout)")
def zswpout(run: RunData) -> float | None:
    return _field(run, "zswpout")


@metric("swap_pswpout", "pages written to the swap device (vmstat pswpout)")
def pswpout(run: RunData) -> float | None:
    return _field(run, "pswpout")


@metric("swap_written_back", "pages zswap wrote back to the device")
def written_back(run: RunData) -> float | None:
    return _field(run, "written_back")


@metric("swap_swapped_in", "pages swapped in: pswpin + zswpin")
def swapped_in(run: RunData) -> float | None:
    return _field(run, "pswpin", "zswpin")


@metric("swap_allocstall", "direct reclaim stalls (vmstat allocstall_*)")
def allocstall(run: RunData) -> float | None:
    return _field(run, "allocstall")


@metric("swap_workload_s", "the workload's own time: fill and final verification (s)")
def workload_s(run: RunData) -> float | None:
    e = run.event(EVENT)
    if e is None or "t0" not in e or "t1" not in e:
        return None
    return round(e["t1"] - e["t0"], 2)


def _pksm_seconds(run: RunData, column: str) -> float | None:
    """PKSM's COLUMN (ns) over the run, in s; 0 where PKSM does not run
    (pksm.enabled=0: no counter), so that 'none' is a value."""
    if not run.series.rows:
        return None
    d = run.delta(column)
    return round((d or 0.0) / 1e9, 4)


@metric("swap_pksm_busy_s", "pksmd's busy time over the run (pksm/busy_ns, s; 0 without PKSM)")
def pksm_busy_s(run: RunData) -> float | None:
    return _pksm_seconds(run, "pksm_busy_ns")


@metric("swap_pksm_cpu_s", "pksmd's CPU time over the run (pksm/cpu_ns, s; 0 without PKSM)")
def pksm_cpu_s(run: RunData) -> float | None:
    return _pksm_seconds(run, "pksm_cpu_ns")


def _offered(run: RunData) -> float | None:
    """Pages reclaim offered PKSM's store-time check; None when none were
    (no swap_dedup, no PKSM)."""
    n = run.last("pksm_swap_offered")
    return n if n else None


@metric("swap_hook_ns_per_offered", "ns in PKSM's reclaim hook per page offered "
        "(swap_ns / swap_offered; none offered: no value)")
def hook_ns_per_offered(run: RunData) -> float | None:
    n, ns = _offered(run), run.last("pksm_swap_ns")
    return round(ns / n, 1) if n and ns is not None else None


def _when_offered(run: RunData, column: str) -> float | None:
    return run.last(column) if _offered(run) else None


@metric("swap_offered", "pages offered to PKSM's store-time check")
def swap_offered(run: RunData) -> float | None:
    return _offered(run)


@metric("swap_cached", "of the pages offered, those already in the swap cache "
        "(read back from swap, about to be written again)")
def swap_cached(run: RunData) -> float | None:
    return _when_offered(run, "pksm_swap_cached")


@metric("swap_stable_merges", "pages merged into the stable tree at store time")
def swap_stable_merges(run: RunData) -> float | None:
    return _when_offered(run, "pksm_swap_stable_merges")


@metric("swap_zero_merges", "pages merged into the zero page at store time")
def swap_zero_merges(run: RunData) -> float | None:
    return _when_offered(run, "pksm_swap_zero_merges")


@metric("swap_deferred", "pages kept for pksmd (an unstable-tree match) at store time")
def swap_deferred(run: RunData) -> float | None:
    return _when_offered(run, "pksm_swap_deferred")


@metric("swap_busy", "pages the store-time check gave up on (pksm_mutex busy)")
def swap_busy(run: RunData) -> float | None:
    return _when_offered(run, "pksm_swap_busy")


@metric("swap_pressure_batches", "pksmd's batches in pressure mode")
def pressure_batches(run: RunData) -> float | None:
    return _when_offered(run, "pksm_pressure_batches")


@metric("swap_pages_sharing_peak", "pages_sharing at its largest (0 without samples of it)")
def pages_sharing_peak(run: RunData) -> float | None:
    rows = run.series.rows
    if not rows:
        return None
    return float(max((r.get("ksm_pages_sharing", 0) for r in rows), default=0))
