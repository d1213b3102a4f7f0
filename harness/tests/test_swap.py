"""PKSM in front of zswap (docs/swap.md), on the real kernel.

One boot of harness/scenarios/pksm-zswap.toml per build (pksm, and
pksm-debug with KASAN, lockdep, DEBUG_VM and PREEMPT, where any report
fails the run) checks, in order:

* reclaim offered PKSM the pages it was about to swap, PKSM entered
  pressure mode and pksmd ran batches with the larger budget;
* duplicates were merged instead of stored (swap_stable_merges), while
  the duplicates were also being rewritten: every merge was decided by a
  full compare of the write-protected page, or dupalloc's verification
  (every 2-3 s and at the end, every process) would find a wrong page;
* zswap really stored pages, and the workload with no duplicates at all
  ran through the same path and verified;
* a process that opted out (MADV_UNMERGEABLE) with the same duplicate
  contents kept every page its own: under pressure, with equal KSM pages
  in the stable tree, reclaim stored its pages and never merged them;
* swapoff right after another process pushed the duplicates' pages out
  (their processes stopped, so that they stay out) brought back every page, merged ones included (zswap empty afterwards,
  over a hundred pages swapped in by it, the duplicates still verified
  after it);
* with swap_dedup=0 reclaim swaps without asking PKSM (swap_offered
  unchanged while pages are swapped out): the baseline is one write away.

A second boot per build runs lab 7's program (labs/07-zswap/pageout.c) on
the release or debug kernel itself: pages read back from swap, so in the
swap cache with their slots, then made equal to KSM pages, are merged when
reclaim takes them again, not written (compressed) to their slots again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import RunScenario, built, explain
from pksmtb import labs, paths, runner

pytestmark = pytest.mark.boot

BUILDS = ["pksm", "pksm-debug"]


def peak(rows: list[dict[str, int]], col: str) -> int:
    return max(r[col] for r in rows if col in r)


@pytest.mark.parametrize("build", BUILDS)
def test_dedup_before_zswap(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-zswap", build)
    con = res.console
    why = explain(res)
    assert con.event("zswap").fields == {"enabled": "Y", "dedup": "1"}, why
    # every dupalloc verified (no dups, opted out, pusher, dups, the last one)
    assert [e.fields["result"] for e in con.events_named("verified")] == ["ok"] * 5, why
    for name in ("nodup", "optout", "pusher", "dup", "off"):
        assert con.event(name).ints() == {"rc": 0}, (name, why)
    # the opted-out process (its region alone is 4096 pages): nothing merged
    optout = [e.ints() for e in con.events_named("merged") if e.ints()["pages"] == 4096]
    assert len(optout) == 1 and optout[0]["ksm"] == 0 and optout[0]["zero"] == 0, (optout, why)

    rows = res.series().rows
    # reclaim offered pages; pressure mode began and pksmd used its budget
    assert peak(rows, "pksm_swap_offered") > 1000, why
    assert peak(rows, "pksm_swap_checked") > 0, why
    assert peak(rows, "pksm_pressure_entries") >= 1, why
    assert peak(rows, "pksm_pressure_batches") >= 1, why
    # duplicates merged instead of compressed and stored
    assert peak(rows, "pksm_swap_stable_merges") > 100, why
    # the hook accounts its time: a few microseconds a page, not milliseconds
    offered = peak(rows, "pksm_swap_offered")
    assert 0 < peak(rows, "pksm_swap_ns") / offered < 200_000, why

    pressure = con.event("pressure").ints()
    # zswap was in front of the device and stored pages (zswpout counts
    # them; how many it still holds at this point depends on its shrinker)
    assert pressure["zswpout"] > 1000, (pressure, why)
    assert pressure["stable"] > 0, (pressure, why)

    # swapoff, with the pages pushed out just before: everything came back
    # in (zswap empty), and the duplicates verified afterwards (above)
    # the four duplicates' processes were stopped while their pages were pushed out
    assert con.event("stopped").ints() == {"procs": 4}, why
    assert con.event("swapoff").ints() == {"ok": 1}, why
    before = con.event("before_swapoff").ints()
    off = con.event("swapped_off").ints()
    # duplicates merged as reclaim offered them, by the end of the push (the
    # first phase alone merged 85-223 on the release build over five runs;
    # with the push 619-784; the debug build 280 in the first phase)
    assert before["stable"] > 100, (pressure, before, why)
    assert off["stored"] == 0, (off, why)
    # the duplicates' unique pages (4,096) were out: a fixed-size push
    # brought in 33-758 pages at swapoff, one sized by MemAvailable 4,400+
    assert off["pswpin"] + off["zswpin"] > before["pswpin"] + before["zswpin"] + 2000, \
        (before, off, why)

    # swap_dedup=0: pages were swapped out, and PKSM was never asked
    before = con.event("dedup_off_before").ints()
    after = con.event("dedup_off_after").ints()
    assert after["zswpout"] + after["pswpout"] > before["zswpout"] + before["pswpout"] + 1000, \
        (before, after, why)
    assert after["offered"] == before["offered"], (before, after, why)
    assert after["stable"] == before["stable"], (before, after, why)


@pytest.mark.parametrize("build", BUILDS)
def test_swap_cache_pages_are_merged_not_written_again(runs_root: Path, build: str) -> None:
    """Lab 7's program on BUILD (perf mode: time travel needs a UP build):
    the cycled pages were paged out once (each compressed: kind first),
    read back (they stay in the swap cache with their slots), given a
    library page's content and paged out again.  The second time reclaim
    must ask PKSM (a reclaim hook that skips swap-cache folios writes each
    to its slot again: compressed, swapped, mapping no KSM page) and the
    merge must leave every page on a KSM page, nothing compressed, nothing
    swapped, every byte intact; the pages of the first trip were stored,
    the control that the pages did go to swap and come back."""
    built(build)
    variant, _, flavour = build.partition("-")
    drawn = {"zero": 48, "library": 64, "twin": 48, "unique": 48, "seen": 48,
             "cycled": 128, "seed": 11}
    req = runner.RunRequest(str(paths.TOP / "labs" / "07-zswap" / "lab7-run.toml"),
                            variant=variant, flavour=flavour, mode="perf",
                            results=runs_root, progress=False,
                            timeout=900 if flavour == "debug" else None)
    res = labs.lab7_run(req, drawn)
    why = explain(res)
    assert res.exit_code == 0 and res.summary["verdict"] == "pass", why
    done = res.console.events_named("lab7done")
    assert done and done[-1].fields.get("verified") == "ok", why
    evs = labs.lab7_events(res)
    n, tol = drawn["cycled"], labs.lab7_tol(drawn["cycled"])
    first, cycled = evs[("on", "first")], evs[("on", "cycled")]
    # the first trip: every page compressed and swapped out
    assert first["compress"] >= n - tol and first["swapped"] >= n - tol, (first, why)
    # the second, from the swap cache: offered, merged into KSM pages
    assert cycled["offered"] >= n - tol and cycled["stable"] >= n - tol, (cycled, why)
    assert cycled["mapksm"] >= n - tol, (cycled, why)
    assert cycled["compress"] <= tol and cycled["swapped"] <= tol, (cycled, why)
    assert labs.lab7_outcome(cycled, n) == "merged", (cycled, why)
    assert labs.lab7_events(res, "lab7verify").get(("on", "cycled"), {}).get("bad") == 0, why
