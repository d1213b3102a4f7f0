"""PKSM under torture (issue 7, item 8): rootfs/src/torture.c.

Processes and threads fork, exit, munmap, mremap, mprotect, MADV_DONTNEED
and MADV_FREE, pin pages in pipes, opt out and in and toggle run=2 at
random against pksmd with probation_scans=0, verifying every page all along
(harness/scenarios/pksm-torture.toml).  Judged here: every page verified,
every kind of operation happened, no kernel report (the debug build's KASAN,
lockdep and PREEMPT), and once the workload is gone PKSM's counters are back
where they were before it started.  `make soak DURATION=...` runs the same
scenario for longer.
"""

from __future__ import annotations

import pytest

from conftest import RunScenario, explain

pytestmark = pytest.mark.boot

# Every kind of operation must have happened at least once, or the run did
# not torture what it claims to (the names are torture's counters).
OPS = ("writes", "maps", "dontneeds", "frees", "munmaps", "mremaps", "mprotects", "pins",
       "unpins", "unmergeable", "mergeable", "prctls", "forks", "run2s", "exits")

# Counters that must come back to their value before the workload started,
# with the slack allowed.  Besides torture's own parent (asleep, present in
# both samples) the guest runs only init, run.sh's shell and the sampler,
# all idle and already settled before the baseline, so what can differ is
# at most a few pages of theirs whose merging run=2 undid and pksmd has not
# redone yet, and the items of processes in flight (the sampler's reads
# start none; 'sleep' and 'cat' are not run).  The slacks are those of
# pksm-lifecycle's leak check; a leak of torture's 6,144 pages a process,
# merged and zero-merged by the thousand, would exceed them at once.
BASELINE_SLACK = {
    "pksm_stable_nodes": 16,
    "pksm_mappings": 16,
    "ksm_pages_shared": 16,
    "ksm_pages_sharing": 16,
    "ksm_ksm_zero_pages": 16,
    "pksm_unstable_pages": 64,
    "pksm_items": 100,
    "pksm_tracked_pages": 100,
}
# The aftermath sample is taken this long after the last process exited:
# pksmd frees dead items and stable nodes every sleep_millisecs (10 ms) and
# prunes mapping records 64 nodes a wake-up.
SETTLE_MS = 3000


@pytest.mark.parametrize("build", ["pksm-debug"])
def test_torture(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-torture", build, check=False)
    con = res.console
    mismatches = [ln for ln in con.mismatches if "torture: MISMATCH" in ln]
    assert not mismatches, "\n".join(mismatches[:10])
    assert con.verify_result() == "ok", explain(res)
    assert res.exit_code == 0, explain(res)
    assert res.summary["verdict"] == "pass", res.summary

    ops = con.event("torture").ints()
    assert ops["mismatches"] == 0 and ops["child_failures"] == 0, ops
    for op in OPS:
        assert ops[op] > 0, (op, ops)

    start = con.event("torture-start").ints()["t_ms"]
    end = con.event("torture-end").ints()["t_ms"]
    rows = res.series().rows
    before = [r for r in rows if r["t_ms"] < start]
    during = [r for r in rows if start <= r["t_ms"] <= end]
    after = [r for r in rows if r["t_ms"] >= end + SETTLE_MS]
    assert before and during and after, (start, end, [r["t_ms"] for r in rows][:5])
    base, last = before[-1], after[-1]
    # PKSM merged while torture ran (else the baseline check proves nothing)
    assert max(r["ksm_pages_sharing"] for r in during) > base["ksm_pages_sharing"] + 100
    assert max(r["ksm_ksm_zero_pages"] for r in during) > base["ksm_ksm_zero_pages"] + 100
    assert last["pksm_stable_merges"] + last["pksm_unstable_merges"] > \
        base["pksm_stable_merges"] + base["pksm_unstable_merges"] + 1000
    leaks = {k: (base[k], last[k]) for k, slack in BASELINE_SLACK.items()
             if last[k] > base[k] + slack}
    assert not leaks, f"counters (before, after) not back to baseline: {leaks}"
