"""PKSM under the shapes real programs make.

One boot runs rootfs/src/shapes.c's shapes one after another
(harness/scenarios/pksm-shapes.toml); each prints its figures and the
daemon's counter changes while it ran, judged here shape by shape, then
the run as a whole (verification, console reports).
"""

from __future__ import annotations

import pytest

from conftest import RunScenario, explain, scenario, unreadable
from pksmtb import paths
from pksmtb.console import Console
from pksmtb.runner import RunResult
from pksmtb.verdict import ExitCode

pytestmark = pytest.mark.boot


def shape_events(con: Console) -> dict[str, dict[str, str]]:
    """name -> the figures of its 'shape' event."""
    return {e.fields["name"]: e.fields for e in con.events_named("shape")}


def run_shapes(run_scenario: RunScenario, scenario: str,
               build: str) -> tuple[dict[str, dict[str, str]], RunResult]:
    res = run_scenario(scenario, build, check=False)
    shapes = shape_events(res.console)
    assert not unreadable(shapes), (unreadable(shapes), explain(res))
    return shapes, res


def judge(res: RunResult) -> None:
    """The run as a whole: every process verified, no console report."""
    assert res.exit_code == 0, explain(res)
    assert res.summary["verdict"] == "pass", res.summary


def test_shapes(run_scenario: RunScenario) -> None:
    shapes, res = run_shapes(run_scenario, "pksm-shapes", "pksm")
    assert set(shapes) == {"mremap", "fork-optout", "pinned", "structured", "madvfree",
                           "swapcache", "pinnedzero", "restore", "refault", "forkzero",
                           "mmaplock", "leader-exit", "hotword", "hotzero", "hotshare"}, \
        explain(res)
    # (restore: equal pages filed apart, one rewritten and restored while the
    # other was filed, reach 90 % merged: they stayed apart before;
    # leader-exit: run=2 unmerges a process whose first thread exited while
    # another runs on: all its pages were left merged before)
    for name in ("mremap", "fork-optout", "pinned", "structured", "madvfree", "swapcache",
                 "pinnedzero", "restore", "leader-exit"):
        assert shapes[name]["result"] == "pass", (name, shapes[name])
    # 24 processes merged into KSM pages in the swap cache and exited: their
    # records went (kept before, each pinning a dead anon_vma: 1,600 here)
    sc = shapes["swapcache"]
    assert int(sc["records_after"]) <= int(sc["records_before"]) + int(sc["pages"]) * 9 // 8, sc
    # A lookup costs O(log n) page compares whatever the content: 2 x 4096
    # pages that share one sampled hash (zero but for one word) may not be
    # compared with each other one by one (that was ~4,000 compares a page).
    pages = 2 * int(shapes["structured"]["pages"])
    assert int(shapes["structured"]["hash_false_positives"]) <= 64 * pages, shapes["structured"]
    # A pinned page is retried ever more rarely (back-off), not every round:
    # 4096 pinned pages cost 264,106 failed merges in this shape before.
    pinned = shapes["pinned"]
    assert int(pinned["merge_failures"]) <= 6 * int(pinned["pages"]), pinned
    # Zero pages pinned in a pipe after they left the unstable tree are retried
    # ever more rarely too, without a drain of the LRU at each retry (before:
    # 299 drains and 76,544 failed merges in 6 s; after: 9-32 and ~350; the
    # mutant busy-page-drains: 212).  The drains left are the rescan list's,
    # at most ten a second by design (pksmd.c: pages other processes changed
    # in the tree wait there too), over the time the hold really took, and
    # a few of pages not yet known busy.
    zero = shapes["pinnedzero"]
    assert int(zero["drains"]) <= 10 * float(zero["held_s"]) + 10, zero
    assert int(zero["failures"]) <= 8 * int(zero["pages"]), zero
    # Pages rewritten every 20 ms in one word outside any sample never pass
    # probation; the few that slip through back off after their COW break.
    hot = shapes["hotword"]
    assert hot["result"] == "pass", hot
    # (before: a merge-COW cycle every 20-40 ms, ~100 breaks a page in 6 s)
    assert int(hot["cow_breaks"]) <= 3 * int(hot["pages"]), hot
    # and pksmd looks at a page that keeps changing ever more rarely (its
    # back-off level rises at each changed visit): about 5 reads a page in
    # 6 s, where visiting it at every batch read each page ~300 times
    assert int(hot["pages_scanned"]) <= 12 * 2 * int(hot["pages"]), hot
    # Zero pages written as soon as they are merged back off too (their
    # place remembers the merge; a zero page has no KSM page to note it,
    # and skipped probation): 13,755 and 14,162 zero merges of 64 pages in
    # 20 s before, 135 after; 4,252 of 2,048 pages after
    zero_hot = shapes["hotzero"]
    assert zero_hot["result"] == "pass", zero_hot
    assert int(zero_hot["zero_merges"]) <= 5 * int(zero_hot["pages"]), zero_hot
    # and nearly every break backs off: 2,048 hot places fit the place
    # table (4,096 slots in sets of four here; a 1,024-slot direct-mapped
    # table let 76 % of them lose their history at 1,024 pages, 96 % at
    # 2,048, and 2,048 places in 2,048 slots 83 %)
    assert int(zero_hot["cow_backoffs"]) >= 0.9 * int(zero_hot["breaks"]), zero_hot
    # One process breaking its merged pages at once, again and again, does
    # not back off the other process's copies of the same KSM pages: they
    # merge again within 14 s (2-8 s here; with the back-off kept per KSM
    # page, 1 of 64 had merged again after 14 s)
    share = shapes["hotshare"]
    assert share["result"] == "pass", share
    # Pages refaulted (MADV_DONTNEED) or unshared (MADV_UNMERGEABLE) where
    # pages were just merged are no COW breaks: not backed off (the birth
    # hook backed off 513 of 512 before; the COW hook sees zero pages now)
    refault = shapes["refault"]
    assert refault["result"] == "pass", refault
    assert int(refault["refault_backoffs"]) < int(refault["pages"]) // 16, refault
    # A child is given no count for the merged zero pages of regions fork
    # did not copy (MADV_DONTFORK) or copied empty (MADV_WIPEONFORK), so the
    # global ksm_zero_pages is back where it was once the children exited
    # and the regions are gone (each child was given the parent's count,
    # which its exit left behind: 8 children, 768 pages each, before)
    fz = shapes["forkzero"]
    assert fz["result"] == "pass", fz
    assert abs(int(fz["after"])) <= 16 and 0 <= int(fz["child_zero"]) <= 16, fz
    # A process whose mmap lock another task sharing its memory takes for
    # writing over and over (mprotect) still gets its pages merged: pksmd
    # only trylocks it, and a failed try delays the merge (0.6-1.8 s, up
    # to ~500 failed merges here), never stops it
    ml = shapes["mmaplock"]
    assert ml["result"] == "pass" and int(ml["mprotects"]) > 0, ml
    judge(res)


@pytest.mark.parametrize("build", ["pksm", "pksm-debug"])
def test_races(run_scenario: RunScenario, build: str) -> None:
    shapes, res = run_shapes(run_scenario, "pksm-races", build)
    assert set(shapes) == {"optout-race", "exit-race", "zero-exit-race", "unmap-race",
                           "pair-write", "forkwide", "fork-optout", "mremap", "forktree",
                           "migrate", "optout-migrating", "uaccess", "cpu-write",
                           "cpu-remap", "bigvma"}, explain(res)
    for name, figures in shapes.items():
        assert figures["result"] == "pass", (name, figures)
    # rmap_walk_ksm() reached the child's PTEs through both its own and its
    # parent's record: 5,892 PTE visits for 3,930 mappings before the fix
    tree = shapes["forktree"]
    assert int(tree["ptes"]) == int(tree["mapcount"]) > int(tree["pages"]), tree
    assert int(tree["forked_ptes"]) == int(tree["forked_mapcount"]) > int(tree["mapcount"]), tree
    # the kept counts caught up with the grandchild's fork (pruning sweep)
    assert tree["kept"] == tree["recount"] and float(tree["converge_s"]) >= 0, tree
    # the opt-out landed while merging was under way (pksmd sleeps 100 ms
    # in every merge, between checking the partner and converting it)
    race = shapes["optout-race"]
    assert 2 <= int(race["merged_before"]) < int(race["pages"]), race
    # each of the three processes exited while pksmd, 200 ms in every zero
    # merge, was still merging its pages (a KASAN report fails the run)
    zero = shapes["zero-exit-race"]
    assert 2 <= int(zero["least_zero_merged_at_exit"]) < int(zero["pages"]), zero
    # two vCPUs: writes on both CPUs faulted on pages pksmd, on CPU 0, had
    # write-protected and checked (merge_races), other merges went through,
    # and not one write was lost (a write-protect without a TLB flush lost
    # 1-4 writes a run here, 3 runs of 3; merges whose page was copied away
    # were counted as made before merge_races)
    # KSM pages moved to new frames: every mapping followed each one, the
    # stable node too (D's equal pages merged into the moved pages: none did
    # with a migration hook that left the node's pfn behind), census exact
    mig = shapes["migrate"]
    assert int(mig["moved"]) >= int(mig["pages"]) // 2, mig
    assert mig["followed"] == mig["moved"] and mig["ptes"] == mig["mapcount"], mig
    assert int(mig["d_into_moved"]) >= int(mig["moved"]) * 9 // 10, mig
    # a KSM page opted out while being moved (its PTEs migration entries)
    # is the process's own afterwards: before, the opt-out took the entries
    # for "nothing mapped" and the moved KSM page was mapped back, still
    # shared (4 of 4 rounds)
    # (in every try; four tries' opt-outs saw the migration entry in their
    # pagemap, so the window was met)
    om = shapes["optout-migrating"]
    assert om["hits"] == "4" and om["kept_ksm"] == "0", om
    # unmerging walks what is mapped, not every page of a VMA: run=2 and an
    # opt-out beside a 16 TiB reservation were killed after 10 s before;
    # both succeed now and leave the reservation's merged page its own
    big = shapes["bigvma"]
    assert int(big["reserved_gib"]) >= 1024 and big["merged"] == "1,1", big
    assert big["run2_ok"] == "1" and big["ksm_after_run2"] == "0", big
    assert float(big["optout_s"]) >= 0 and big["ksm_after_optout"] == "0", big
    # partners unmapped while pksmd write-protected them were not made KSM
    # pages (a write reused such a KSM page in place in 10 rounds of 10)
    unmap = shapes["unmap-race"]
    assert unmap["reused"] == "0" and int(unmap["races"]) > 0, unmap
    # a page written while pksmd paired it, after its lookup and before its
    # write-protect: the compare after the write-protect saw the write and
    # refused the pair (merge_failures), no write was lost, and the pages
    # nobody wrote merged
    pair = shapes["pair-write"]
    assert pair["lost"] == "0" and int(pair["refused"]) > 0, pair
    assert int(pair["stamped"]) > 0, pair
    cpu = shapes["cpu-write"]
    assert cpu["cpus"] == "2" and cpu["lost"] == "0,0", cpu
    assert int(cpu["cross_races"]) > 0 and int(cpu["stable"]) > 0, cpu
    assert int(cpu["ptes"]) == int(cpu["mapcount"]), cpu
    remap = shapes["cpu-remap"]
    assert int(remap["ptes"]) == int(remap["mapcount"]) > int(remap["pages"]), remap
    judge(res)


@pytest.mark.parametrize("trust", ["on", "off"])
def test_trusting_the_hash_is_caught(run_scenario: RunScenario, trust: str) -> None:
    """The negative control: a merge that trusts equal sampled hashes after
    the write-protect (debugfs pksm/unsafe_trust_hash, debug builds only)
    instead of comparing whole pages again must fail shape pair-write,
    whose near-duplicates (one word written while pksmd pairs the page)
    differ mostly outside the sampled words; off, the same shape passes.
    The switch refuses bad writes first (the scenario exits 3 otherwise)."""
    text = (paths.SCENARIOS / "test-trust-hash.toml").read_text()
    if trust == "off":
        on = 'echo 1 > $k && [ "$(cat $k)" = 1 ]'
        assert text.count(on) == 1
        text = text.replace(on, 'echo 0 > $k && [ "$(cat $k)" = 0 ]')
        text = text.replace('exit = 1\nverify = "fail"', 'exit = 0\nverify = "ok"')
    res = run_scenario(scenario(text, f"trust-hash-{trust}"), "pksm-debug", check=False)
    shapes = shape_events(res.console)
    assert set(shapes) == {"pair-write"} and not unreadable(shapes), explain(res)
    pair = shapes["pair-write"]
    # the run is judged as the scenario expects: with the switch on, the
    # shape's failure (and nothing else: no kernel report, no time-out)
    assert res.exit_code == ExitCode.OK and res.summary["verdict"] == "pass", explain(res)
    if trust == "on":
        assert "pksm: unsafe_trust_hash" in res.console_text, explain(res)
        assert pair["result"] == "fail" and int(pair["lost"]) > 0, pair
        assert "LOST WRITE" in res.console_text, explain(res)
    else:
        assert pair["result"] == "pass" and pair["lost"] == "0", pair
        assert int(pair["refused"]) > 0, pair


def test_sleep_zero_runs_batches_back_to_back(run_scenario: RunScenario) -> None:
    """sleep_millisecs 0 asks for no sleep while pages wait, as it does of
    upstream's ksmd (upstream's ksm_tests run with it and pages_to_scan 10).
    In deterministic mode guest time moves while every CPU idles (and by
    a fraction of a microsecond a clock read otherwise), so
    the time shape nosleep takes to merge its pages counts pksmd's sleeps:
    a jiffy (10 ms) after each batch of 10 visits would make it at least
    2.05 s for 2048 pages (the mutant sleep-zero-sleeps: 4.24 s); back to
    back, 0.009 s."""
    shapes, res = run_shapes(run_scenario, "pksm-nosleep", "pksm-up")
    assert res.meta["flavour"] == "up", res.meta["flavour"]
    assert set(shapes) == {"nosleep"}, explain(res)
    ns = shapes["nosleep"]
    assert ns["result"] == "pass", ns
    slept_floor = int(ns["pages"]) // 10 * 0.010
    assert float(ns["after_s"]) < slept_floor / 4, ns
    # but a page pksmd cannot read (pinned in a pipe, unmapped before its
    # first visit) waits on the new list without making pksmd spin: a
    # jiffy's sleep after each batch that read nothing (11 batches in
    # 200 ms; the mutant nosleep-spins-on-unread: hundreds of thousands)
    assert int(ns["stuck_batches"]) <= int(ns["stuck_ms"]) // 10 * 2 + 10, ns
    judge(res)


@pytest.mark.parametrize("build", ["pksm", "pksm-debug"])
def test_compaction(run_scenario: RunScenario, build: str) -> None:
    """Merged and tracked pages migrated by compaction keep content and merging."""
    res = run_scenario("pksm-compact", build, check=False)
    judge(res)
    vmstat = {k: int(v) for e in res.console.events_named("vmstat")
              for k, v in e.fields.items()}
    assert vmstat.get("pgmigrate_success", 0) > 0, explain(res)
    # PKSM's own pages among those moved: stable nodes and items followed
    assert max(r["pksm_migrated_pages"] for r in res.series().rows) > 0
    # and every process still maps merged pages at the end
    merged = res.console.events_named("merged")
    assert len(merged) == 4 and all(e.num("ksm") > 0 for e in merged), \
        [e.fields for e in merged]


def test_failslab(run_scenario: RunScenario) -> None:
    """failslab on PKSM's caches (debug build): every allocation site's error
    path taken, every process verified throughout, nothing leaked."""
    res = run_scenario("pksm-failslab", "pksm-debug", check=False)
    judge(res)
    con = res.console
    fails = con.event("allocfail").ints()
    # every allocation site failed at least once (the claim array of up
    # to 16 mms comes from a cache of its own, which failslab targets)
    for site in ("chunk", "node", "mapping", "claim"):
        assert fails[site] > 0, fails
    before, after = con.event("before").ints(), con.event("after").ints()
    # merging went on between the failures
    assert after["merges"] - before["merges"] > 100, (before, after)
    # every process gone: PKSM's objects back to what it had before (a
    # slab's worth of slack: SLUB counts per-cpu slabs as in use)
    for key, slack in (("slab_nodes", 80), ("slab_mappings", 160)):
        assert before[key] >= 0, (key, before)
        assert after[key] <= before[key] + slack, (key, before, after)
    # chunks of items are kept; each one metadata_bytes counts is allocated
    for row in (before, after):
        assert row["chunks"] <= row["slab_chunks"] <= row["chunks"] + 64, row
    assert after["stable_nodes"] <= before["stable_nodes"] + 8, (before, after)
    assert after["items"] <= before["items"] + 100, (before, after)
    # fail_page_alloc: the opt-out's unsharing ran out of memory part-way;
    # the process stayed opted in and every page merged again (before the
    # fix the pages the opt-out had forgotten never merged again)
    enomem = con.event("shape").fields
    assert enomem["name"] == "optout-enomem" and enomem["result"] == "pass", enomem
    assert not unreadable({"optout-enomem": enomem}), enomem
    # births without a chunk (every chunk allocation failing while a
    # process filled): dozens of pages got no item, pksmd adopted them once
    # allocations succeeded again, and every duplicate merged (before the
    # fix such pages stayed untracked, their duplicates never merged)
    chunkless = con.event("chunkless").ints()
    assert chunkless["untracked"] >= 50, chunkless
    adopted = con.event("adopted").ints()
    # (not all: the shell's own short-lived processes exited meanwhile)
    assert adopted["adopted"] >= 50, adopted
    awaited = [e.ints() for e in con.events_named("awaited") if e.ints()["pages"] == 6144]
    assert len(awaited) == 2 and all(a["reached"] == 1 for a in awaited), (awaited, adopted)


def test_an_unreadable_counter_fails_the_shape() -> None:
    """A counter printed as -1 is a failure, not a figure under every limit."""
    ok = {"pinned": {"pages": "4096", "merge_failures": "12", "result": "pass"}}
    bad = {"pinned": {"pages": "4096", "merge_failures": "-1", "result": "pass"}}
    assert unreadable(ok) == [] and unreadable(bad) == ["pinned.merge_failures"]
