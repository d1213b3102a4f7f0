"""PKSM on the real kernel: merging, zero pages, fork, COW, lifecycle, KUnit.

Every scenario runs on the 'pksm' build; the ones marked for the debug build
run again on 'pksm-debug' (KASAN, lockdep, DEBUG_VM, DEBUG_LIST), where any
BUG/WARNING/KASAN/lockdep report in the console fails the run (the harness
judges console reports on every build).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from conftest import RunScenario, scenario
from pksmtb import sampling

pytestmark = pytest.mark.boot

BUILDS = ["pksm", "pksm-debug"]


def last(series: sampling.Series, col: str) -> int:
    return series.rows[-1][col]


def peak(series: sampling.Series, col: str) -> int:
    return max(r[col] for r in series.rows)


@pytest.mark.parametrize("build", BUILDS)
def test_merge_without_madvise(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-merge", build)
    summary = res.summary
    assert "--merge" not in (res.run_dir / "run.sh").read_text()
    # KUnit suite ran at boot and passed
    assert summary["kunit"] and summary["kunit"]["passed"] == 8
    assert not summary["kunit"]["failed"]
    assert re.search(r"ok \d+ pksm\b", res.console_text)
    # and is in the run directory's junit.xml: the run's verdict, every case passed
    root = ET.parse(res.run_dir / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root}
    kunit = [c for name, s in suites.items() if str(name).startswith("kunit.")
             for c in s.iter("testcase")]
    assert len(kunit) == 8 and root.get("failures") == root.get("errors") == "0"
    assert {c.get("name") for c in kunit} >= {"pksm_test_hash", "pksm_test_probation"}
    assert [c.get("name") for c in suites["run"].iter("testcase")] == ["verdict"]
    series = res.series()
    f = res.console.event("filled").ints()
    # near pages differ from duplicates in one byte, mostly outside the
    # hash sample: the prefilter passes them (false positives counted), the
    # full compare refuses them, and dupalloc's verification proves no page
    # changed.  (The saving may exceed dupalloc's achievable figure a little:
    # PKSM also merges the other guest processes' duplicate pages.)
    assert res.summary["verify"] == "ok"
    assert summary["saved_fraction"] >= 0.9
    assert peak(series, "pksm_zero_merges") >= f["zero"]
    assert peak(series, "pksm_hash_false_positives") > 0
    assert last(series, "pksm_busy_ns") > 0
    # the sampler found the daemon in every sample (-1: no pksmd thread,
    # as with pksm.enabled=0 below), and its CPU was counted
    assert all(r["daemon_cpu_ticks"] >= 0 for r in series.rows), series.rows[:3]
    # ... and its ticks rose over the run: the thread it read is the one
    # that merged
    assert last(series, "daemon_cpu_ticks") > series.rows[0]["daemon_cpu_ticks"], \
        (series.rows[0], series.rows[-1])
    assert last(series, "pksm_cpu_ns") > 0
    # every birth was tracked (no GFP_NOWAIT allocation failed here)
    assert last(series, "pksm_untracked_pages") == 0


@pytest.mark.parametrize("build", BUILDS)
def test_zero_pages_merge_at_first_sight(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-zero-first", build)
    series = res.series()
    f = res.console.event("filled").ints()
    # (a few more: dupalloc's own calloc'd bookkeeping is zero pages too)
    assert peak(series, "ksm_ksm_zero_pages") >= f["zero"]
    assert peak(series, "pksm_zero_merges") >= f["zero"]
    # duplicates are still on probation (254 visits, 100 ms apart)
    assert peak(series, "pksm_stable_merges") == 0
    assert peak(series, "pksm_unstable_merges") == 0
    assert peak(series, "ksm_pages_sharing") == 0


@pytest.mark.parametrize("build", BUILDS)
def test_fork_shared_pages_merge_whole(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-fork", build)
    series = res.series()
    f = res.console.event("filled").ints()
    per_proc = f["dup"] // 2
    # each content: 2 processes x (1 + 1 fork child) PTEs on one KSM page,
    # so pages_sharing reaches 3 per KSM page only if every PTE moved
    assert peak(series, "ksm_pages_shared") >= 0.9 * per_proc
    assert peak(series, "ksm_pages_sharing") >= 0.9 * 3 * per_proc


@pytest.mark.parametrize("build", BUILDS)
def test_write_after_merge(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-cow", build)
    series = res.series()
    assert res.summary["verify"] == "ok"
    assert last(series, "pksm_cow_breaks") > 0
    assert peak(series, "ksm_pages_sharing") > 0
    cow = res.console.event("cow").ints()
    assert 0 < cow["before"] <= cow["cow_ksm"] <= cow["after"]


@pytest.mark.parametrize("build", BUILDS)
def test_kill_and_exit_leave_nothing(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-lifecycle", build)
    killed = {e.ints()["pid"] for e in res.console.events_named("killed")}
    assert len(killed) == 3, res.console.events_named("killed")
    # dupalloc saw exactly its three killed children fail, each by SIGKILL,
    # and no page of a surviving process changed
    assert res.console.verify_result() == "fail"
    assert res.console.event("verified").ints().get("failures") == 3
    by_signal = {int(m.group(1)) for m in
                 re.finditer(r"dupalloc: proc \d+ pid (\d+) killed by signal 9", res.console_text)}
    assert by_signal == killed, (by_signal, killed)
    assert "MISMATCH" not in res.console_text
    before, during, after = (res.console.event(n).ints() for n in ("before", "during", "after"))
    # merging was under way when the children were killed: the first kill
    # came after the workload's first 500 merges, and the workload's merging
    # went on after it (a kill after merging had finished exercises no
    # race).  The guest's own short-lived processes (the counters' cats)
    # keep merging a few pages meanwhile: with the kills after merging had
    # finished (1.2 s in, at the default 4000 visits every 10 ms) 16 merges
    # came after the first kill; with the scenario's slower scan, 1,505.
    kills = [e.ints()["merges"] for e in res.console.events_named("killed")]
    assert kills[0] >= before["merges"] + 500, (before, kills)
    assert during["merges"] >= kills[0] + 200, (kills, during)
    assert during["zero_merges"] > before["zero_merges"] + 200
    # ... and nothing of the workload survives it.  The workload had
    # thousands of KSM pages, records and zero pages; the guest's own shells
    # keep merging among themselves meanwhile, hence a small slack.
    for key in ("stable_nodes", "mappings", "shared", "sharing", "zero", "unstable"):
        assert after[key] <= before[key] + 16, (key, before, after)
    # Items: the workload had 8192 tracked pages.  The counters() helper's own
    # short-lived cat processes keep a few dozen dead items in flight
    # (unstable table) at any moment, before and after alike.
    assert after["items"] <= before["items"] + 100, (before, after)
    assert after["tracked"] <= before["tracked"] + 100, (before, after)
    # The same told by the allocator rather than by PKSM's own counters:
    # objects in PKSM's slab caches (its own, SLAB_NO_MERGE).  SLUB counts
    # whole per-cpu slabs as in use, so the slack is a slab's worth of
    # objects (64, 128) on top of the counters' slack; the workload had
    # thousands of each.
    for key, slack in (("slab_nodes", 80), ("slab_mappings", 160)):
        assert before[key] >= 0, (key, before)
        assert after[key] <= before[key] + slack, (key, before, after)
    # The chunks of items are kept (16 bytes a frame that held a tracked
    # page): the allocator holds every chunk metadata_bytes counts, and a
    # slab's worth more at most (1 KiB objects, 32 a slab, a slab per CPU)
    for row in (before, after):
        assert row["chunks"] <= row["slab_chunks"] <= row["chunks"] + 64, row


def test_pksm_off_boot_parameter(run_scenario: RunScenario) -> None:
    """pksm.enabled=0: hooks and daemon off, nothing tracked, nothing merged."""
    off = scenario('[scenario]\nvariant = "pksm"\nmem = "64M"\n'
                   '[[workload]]\nprogram = "dupalloc"\n'
                   'options = { procs = 2, mib = 2, dup = 100, hold = 1 }\n'
                   '[[workload]]\nshell = "sleep 0.5; echo PKSMTB-EVENT off '
                   'enabled=$(cat /sys/kernel/mm/pksm/enabled) '
                   'tracked=$(cat /sys/kernel/mm/pksm/tracked_pages)"\n', "off")
    res = run_scenario(off, "pksm", kernel_args=["pksm.enabled=0"])
    assert res.console.event("off").ints() == {"enabled": 0, "tracked": 0}
    # and so for the whole run, not only at 0.5 s: no pksmd thread (the
    # sampler finds no daemon), nothing tracked, no daemon time, no merge
    rows = res.series().rows
    assert rows
    for row in rows:
        assert row["daemon_cpu_ticks"] == -1, row
        assert row["pksm_tracked_pages"] == 0 and row["pksm_items"] == 0, row
        assert row["pksm_busy_ns"] == 0 and row["ksm_full_scans"] == 0, row
        assert row["ksm_pages_sharing"] == 0 and row["ksm_ksm_zero_pages"] == 0, row


UNSTABLE_COST = """
[scenario]
variant = "pksm"
mem = "128M"
timeout = 120
[knobs.ksm]
run = 1
[knobs.pksm]
probation_scans = 0
[[workload]]
shell = '''
p=/sys/kernel/mm/pksm
snap() {
	echo "PKSMTB-EVENT $1 meta=$(cat $p/metadata_bytes) items=$(cat $p/items)" \\
	     "chunks=$(cat $p/chunks)" \\
	     "nodes=$(cat $p/stable_nodes) mappings=$(cat $p/mappings)" \\
	     "unstable=$(cat $p/unstable_pages)"
}
until_unstable() { # $1 -ge|-le N: wait up to 20 s for unstable_pages to get there
	i=0
	while ! [ "$(cat $p/unstable_pages)" "$1" "$2" ] && [ $i -lt 200 ]; do
		sleep 0.1; i=$((i + 1))
	done
}
sleep 1
dupalloc --procs 1 --mib 32 --dup 0 --seed 21 --hold-until /tmp/unstable-done --hold 60 &
until_unstable -ge 7500
sleep 0.5
snap filed
touch /tmp/unstable-done
wait
until_unstable -le 300
sleep 1
snap freed
'''
"""


def test_unstable_pages_cost_nothing_but_their_frames_items(run_scenario: RunScenario) -> None:
    """A page waiting in the unstable table costs nothing but its frame's
    16-byte item, which is kept with its chunk once the page is gone (the
    table's buckets are allocated at start-up): when ~8,000 unique pages
    leave the table and their process exits, their items are free again
    and metadata_bytes moves only by the stable nodes and records that came
    and went (and any chunk allocated meanwhile).  With an item allocated
    for each page it fell by 32 bytes a page, and with a tree node for each
    unstable page by 56 bytes more."""
    res = run_scenario(scenario(UNSTABLE_COST), "pksm")
    filed, freed = res.console.event("filed").ints(), res.console.event("freed").ints()
    left = filed["unstable"] - freed["unstable"]
    assert left >= 7000, (filed, freed)
    assert freed["items"] <= filed["items"] - 7000, (filed, freed)
    expected = (72 * (filed["nodes"] - freed["nodes"])
                + 32 * (filed["mappings"] - freed["mappings"])
                - 1024 * (freed["chunks"] - filed["chunks"]))
    # the counters are read one after another while the guest's own
    # processes come and go: a few nodes and records of slack
    assert abs(filed["meta"] - freed["meta"] - expected) <= 16 * 72, (filed, freed, expected)
    # every chunk is counted, and a chunk (63 frames) holds the items
    assert filed["chunks"] * 63 >= filed["items"], filed


def test_knobs_reject_bad_writes(run_scenario: RunScenario) -> None:
    """Garbage, negative, huge and out-of-range writes: an error, no change."""
    res = run_scenario("pksm-knobs", "pksm")
    console = res.console_text
    assert "KNOB-FAIL" not in console, [ln for ln in console.splitlines() if "KNOB-FAIL" in ln]
    # 12 upstream knobs in ksm/ (no NUMA: no merge_across_nodes), 6 in pksm/
    assert res.console.event("knobs").ints()["writable"] == 18
    # each knob refused all 9 bad values; 15 out-of-range refused, 20 boundaries taken
    assert console.count("KNOB-OK") == 18 * 9 + 15 + 20


@pytest.mark.parametrize("build", BUILDS)
def test_merged_pages_swap_out_and_in(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario("pksm-swap", build)
    assert res.console.event("swap").fields == {}
    verified = res.console.events_named("verified")
    assert [e.fields["result"] for e in verified] == ["ok", "ok"]
    vm = res.console.event("vmstat").ints()
    assert vm["pswpout"] > 0 and vm["pswpin"] > 0
    # KSM pages came back from swap (copied on swap-in, as upstream does):
    # many as the first group's verification reads them (4,800-14,500 a run
    # on pksm-debug), not a stray one.  The pressure starts once they are
    # merged: on a loaded host the debug build once merged them only after
    # the pressure had passed (0 copies)
    assert vm["ksm_swpin_copy"] >= 100, vm
    series = res.series()
    top = peak(series, "ksm_pages_shared")
    assert top > 1000
    # reclaim took merged pages away while their processes were alive
    # (after they exit pages_shared falls whatever reclaim did, which is all
    # a check over the whole run saw): from the second group's start to the
    # first group's exit it dipped to 58-77 % of its peak in four runs here
    marks = [e.ints() for e in res.console.events_named("window")]
    start, end = marks[0]["from_ms"], marks[1]["to_ms"]
    inside = [r["ksm_pages_shared"] for r in series.rows if start <= r["t_ms"] <= end]
    assert len(inside) >= 8, (start, end, len(series.rows))
    assert min(inside) < 0.9 * top, (top, inside)


def test_trace_timelines(run_scenario: RunScenario) -> None:
    """Tracepoints recorded into the run: per-page timelines, merge->COW lifetimes."""
    res = run_scenario("pksm-cow", "pksm", trace="pksm")
    run_dir = res.run_dir
    assert res.console.event("trace").ints() == {"overrun": 0}
    t = res.summary["trace"]
    for ev in ("pksm_page_registered", "pksm_probation_passed", "pksm_merge",
               "pksm_cow_break", "pksm_item_released", "pksm_hash_false_positive"):
        assert t["events"].get(ev, 0) > 0, (ev, t["events"])
    # the COW breaks the kernel counted show up on the timeline (tracing
    # starts a little after boot and stops a little after the last sample)
    series = res.series()
    counted = last(series, "pksm_cow_breaks")
    assert 0.9 * counted <= t["events"]["pksm_cow_break"] <= counted + 100
    assert t["cow_after_merge"] > 0 and "merge_to_cow_median_s" in t
    assert 0 <= t["wasted_merges"] <= t["cow_after_merge"]
    assert (run_dir / "merge_to_cow.png").stat().st_size > 1000
    rows = (run_dir / "timeline.csv").read_text().splitlines()
    assert rows[0].startswith("pfn,registered_s,probation_s,merged_s,kind,kpfn")
    merged = [r for r in rows[1:] if ",stable," in r or ",unstable," in r or ",zero," in r]
    assert len(merged) > 1000
    # a monotonic trace clock, not UML's 10 ms jiffies
    stamps = re.findall(r"\s(\d+\.\d{6}): pksm_", (run_dir / "trace.txt").read_text())
    assert any(not s.endswith("0000") for s in stamps[:2000])


@pytest.mark.parametrize("build", BUILDS)
def test_run2_unmerges_everything(run_scenario: RunScenario, build: str) -> None:
    """run=2: every merged page (KSM and zero, fork-shared too) unshared, memory intact."""
    res = run_scenario("pksm-unmerge", build, trace="merge,unmerge")
    summary = res.summary
    u = res.console.event("unmerge").ints()
    # a counter read in the middle of run=2 did not wait for its end (with
    # pksm_mutex taken by the read, the read came back after the last COW)
    r = res.console.event("run2read").ints()
    assert r["before"] + 100 < r["read"] < r["after"], r
    assert u["before_sharing"] > 1000 and u["before_zero"] > 1000
    assert u["after_sharing"] == 0 and u["after_shared"] == 0 and u["after_zero"] == 0
    assert u["run"] == 2
    # one pksm_unmerge event per PTE given its own copy: at least every
    # sharing and zero-page PTE counted just before run=2
    assert res.console.event("trace").ints() == {"overrun": 0}
    assert res.summary["trace"]["events"]["pksm_unmerge"] >= u["before_sharing"] + u["before_zero"]
    later = res.console.event("later").ints()
    assert later["sharing"] == 0 and later["zero"] == 0   # pksmd merged nothing since
    # and by the frames themselves, not PKSM's own counters: at the end of
    # its hold every process (4, and their 4 fork-share children) maps no
    # KSM page and no zero page by merging (pagemap + kpageflags)
    merged = res.console.events_named("merged")
    assert len(merged) == 8, [e.fields for e in merged]
    assert all(e.num("ksm") == 0 and e.num("zero") == 0 for e in merged), \
        [e.fields for e in merged]
    # dupalloc (and its fork-share children) verified every second throughout
    assert res.summary["verify"] == "ok"


@pytest.mark.parametrize("build", BUILDS)
def test_merge_domains_share_no_frame_across_domains(run_scenario: RunScenario,
                                                    build: str) -> None:
    """merge_domain uid, cgroup and session: no KSM frame mapped by two
    domains (from the frames: pagemap + kpageflags), each domain's pages
    still all merged; all: every frame shared by every group (the check
    sees sharing where it is allowed); every byte intact throughout.  The
    per-domain figures: PKSM's (KSM and zero pages of each domain) and
    memory.stat's cow_ksm, charged to the cgroup of the page's process."""
    res = run_scenario("pksm-domains", build)
    ev = {}
    for i, e in enumerate(res.console.events_named("domains")):
        ev[(e.fields["mode"], i)] = e.ints()
    modes = [m for m, _ in sorted(ev, key=lambda k: k[1])]
    assert modes == ["all", "uid", "cgroup", "session", "all"], modes
    runs = [ev[k] for k in sorted(ev, key=lambda k: k[1])]
    pages, groups, procs = 256, 3, 2
    for mode, d in zip(modes, runs):
        # merging inside each domain unchanged: every content page of every
        # process maps a KSM page, and the zero pages the zero page
        assert d["ksm"] == groups * procs * pages, (mode, d)
        assert d["zero"] == groups * procs * 32, (mode, d)
        # the zero page is shared across domains in every mode (public content)
        assert d["zero_groups"] == groups, (mode, d)
    # a change of mode unmerges KSM pages only: the zero-page merges stay
    # (before, each change unshared all 192 and pksmd merged them again)
    assert [d["zero_merges"] for d in runs[1:]] == [0, 0, 0, 0], runs
    first_all, uid, cgroup, session, last_all = runs
    for d in (first_all, last_all):
        # one frame per content page, mapped by all three groups: what every
        # isolating mode forbids is seen (the frame check bites)
        assert d["frames"] == pages and d["same"] == pages, d
        assert d["cross_uid"] == d["cross_cgroup"] == d["cross_session"] == pages, d
    # uid: groups 0 and 2 (uid 1000) share their frames, group 1 (uid 1001)
    # has its own; no frame crosses a uid (cgroups and sessions it does)
    assert uid["cross_uid"] == 0 and uid["frames"] == 2 * pages, uid
    assert uid["same"] == pages and uid["cross_cgroup"] == pages, uid
    # cgroup, session: three domains, three frames per content page
    for d, key in ((cgroup, "cross_cgroup"), (session, "cross_session")):
        assert d[key] == 0 and d["cross"] == 0, d
        assert d["frames"] == groups * pages and d["same"] == 0, d
    # PKSM's own per-domain figures (/sys/kernel/debug/pksm/domains), read
    # at each mode's end: only that mode's domains; each group's domain
    # holds at least its content pages' KSM pages (other processes of the
    # domain, init and the group leaders, may add a few)
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for e in res.console.events_named("domain_stat"):
        assert "error" not in e.fields, e.fields
        stats.setdefault(e.fields["mode"], {})[e.fields["domain"]] = e.ints()
    for mode in ("uid", "cgroup", "session"):
        assert all(d.startswith(mode + ":") for d in stats[mode]), stats[mode]
    assert list(stats["all"]) == ["all:0"] and stats["all"]["all:0"]["sharing"] >= 5 * pages
    uid1000, uid1001 = stats["uid"]["uid:1000"], stats["uid"]["uid:1001"]
    assert uid1000["shared"] >= pages and uid1000["sharing"] >= 3 * pages, uid1000
    assert uid1001["shared"] >= pages and uid1001["sharing"] >= pages, uid1001
    for mode in ("cgroup", "session"):
        big = [d for d, v in stats[mode].items() if v["shared"] >= pages and v["sharing"] >= pages]
        assert len(big) == groups, stats[mode]
    # zero-page merges per domain, against what the processes say of
    # their own (/proc/PID/ksm_stat, read just after): each group's domain
    # holds exactly its leader's and workers' (at least the workers' 32
    # zero pages each; the workers run two threads each, so an mm counted
    # per task would double them); a process of zero pages only, in a
    # session of its own, has a line with zero pages and no KSM page; all
    # holds at least everyone's of these.
    per_group = procs * 32
    grp = {e.ints()["g"]: e.ints() for e in res.console.events_named("group")}
    assert sorted(grp) == list(range(groups)), grp
    own: dict[str, dict[int, int]] = {}
    for e in res.console.events_named("group_zero"):
        own.setdefault(e.fields["mode"], {})[e.ints()["g"]] = e.ints()["zero"]
    lone = {e.fields["mode"]: e.ints() for e in res.console.events_named("zero_only")}

    def zero_of(mode: str, domain: str) -> int:
        return stats[mode].get(domain, {}).get("zero", 0)

    for mode in ("all", "uid", "cgroup", "session"):
        assert all(own[mode][g] >= per_group for g in range(groups)), (mode, own[mode])
        assert lone[mode]["zero"] >= 32, (mode, lone[mode])
    assert zero_of("all", "all:0") >= sum(own["all"].values()) + lone["all"]["zero"], stats["all"]
    for mode in ("cgroup", "session"):
        for g in range(groups):
            assert zero_of(mode, f"{mode}:{grp[g][mode]}") == own[mode][g], (mode, g, stats[mode])
    assert zero_of("uid", "uid:1000") == own["uid"][0] + own["uid"][2], (own["uid"], stats["uid"])
    assert zero_of("uid", "uid:1001") == own["uid"][1], (own["uid"], stats["uid"])
    solo = stats["session"].get(f"session:{lone['session']['pid']}")
    assert solo == {"shared": 0, "sharing": 0, "zero": lone["session"]["zero"]}, solo
    # memory.stat's cow_ksm: the copies made when the root process wrote
    # the first worker's KSM pages (process_vm_writev) are its cgroup's,
    # every one, and no other group's
    cow = {e.ints()["group"]: e.ints() for e in res.console.events_named("cow_stat")}
    assert sorted(cow) == list(range(groups)), cow
    assert sum(c["written"] for c in cow.values()) == 16, cow
    for c in cow.values():
        assert c["before"] >= 0 and c["after"] - c["before"] == c["written"], cow
    assert res.summary["verify"] == "ok"


def test_side_channel_has_no_signal_across_domains(run_scenario: RunScenario) -> None:
    """An attacker times writes to its copies of a victim's candidate pages
    (another uid, cgroup and session): under merge_domain all its copies
    of the pages the victim holds map KSM pages (the signal it times); under
    uid, cgroup and session none does (from the frames).  How well it
    classifies is a study's figure (results/domains/), not asserted here."""
    res = run_scenario("domains-sidechannel", "pksm")
    events = [e for e in res.console.events_named("sidechannel")]
    assert [e.fields["mode"] for e in events] == [m for m in ("all", "uid", "cgroup", "session")
                                                  for _ in range(2)]
    for e in events:
        d = e.ints()
        assert d["pages"] == 256 and 64 < d["held"] < 192, e.fields
        if e.fields["mode"] == "all":
            assert 0 < d["merged"] <= d["held"], e.fields
        else:
            assert d["merged"] == 0, e.fields
        # without fake merging no page is a KSM page alone, and the second
        # write to each calibration pair frees its KSM page in the fault:
        # the controls for test_fake_merge_makes_every_candidate_a_ksm_page
        assert d["ksm"] == d["merged"] and d["cal_lone"] == 0, e.fields
        assert d["cal_pairs"] == 64 and d["fault_freed"] == 32, e.fields


def test_fake_merge_makes_every_candidate_a_ksm_page(run_scenario: RunScenario) -> None:
    """fake_merge=1, on the debug build: every candidate of the attacker
    maps a KSM page whether or not the victim holds its content (from the
    frames), the held ones the victim's very frame under merge_domain all
    and none of the victim's under uid, its unique calibration pages too;
    no write fault of the attacker frees a KSM page itself (from the trace
    of its page frees: a work item frees them), though each copies the last
    mapping of its lone pages and pairs; the program's own check finds
    every byte of both processes intact after the writes (exit 0)."""
    res = run_scenario("domains-fakemerge", "pksm-debug")
    events = [e for e in res.console.events_named("sidechannel")]
    assert [e.fields["mode"] for e in events] == ["all", "uid"]
    for e in events:
        d = e.ints()
        assert d["pages"] == 256 and 64 < d["held"] < 192, e.fields
        assert d["ksm"] == d["pages"] and d["cal_lone"] == 32 and d["cal_pairs"] == 64, e.fields
        assert d["fault_freed"] == 0, e.fields
        if e.fields["mode"] == "all":
            assert 0 < d["merged"] <= d["held"], e.fields
        else:
            assert d["merged"] == 0, e.fields


@pytest.mark.parametrize("build", BUILDS)
def test_opt_out_keeps_pksm_away(run_scenario: RunScenario, build: str) -> None:
    """MADV_UNMERGEABLE and PR_SET_MEMORY_MERGE=0: never merged, children too."""
    res = run_scenario("pksm-optout", build)
    con = res.console
    groups: dict[int, list[dict[str, int]]] = {}
    for ev in (e.ints() for e in con.events_named("merged")):
        groups.setdefault(ev["pages"], []).append(ev)
    fills = {f["pages_total"] // f["procs"]: f
             for f in (e.ints() for e in con.events_named("filled"))}
    # 4 MiB: merged as usual; 3 MiB: MADV_UNMERGEABLE; 2 MiB: opted out,
    # each with a fork-share child; 1 MiB: merged, then MADV_UNMERGEABLE
    assert sorted(groups) == [256, 512, 768, 1024] and sorted(fills) == [256, 512, 768, 1024]
    assert [len(groups[n]) for n in (1024, 768, 512, 256)] == [2, 2, 4, 2]
    # the merging groups held only once every dup and zero page was merged
    # (--await-merged): what follows does not depend on pksmd's speed
    awaited = [e.ints() for e in con.events_named("awaited")]
    assert sorted(ev["pages"] for ev in awaited) == [256, 256, 1024, 1024], awaited
    assert all(ev["reached"] == 1 for ev in awaited), awaited
    dup, zero = fills[1024]["dup"] // 2, fills[1024]["zero"] // 2
    later = [e.ints() for e in con.events_named("excluded")]
    assert len(later) == 2
    for ev in later:
        assert ev["pages"] == 256
        # merged before (by pagemap/kpageflags: every dup and zero page,
        # as the hold began only then) ...
        assert ev["ksm_before"] == fills[256]["dup"] // 2, ev
        assert ev["zero_before"] == fills[256]["zero"] // 2, ev
        # ... unmerged at once: none left when madvise() has returned ...
        assert ev["ksm_after"] == 0 and ev["zero_after"] == 0, ev
    for ev in groups[256]:
        # ... and not merged at the end, two seconds after MADV_UNMERGEABLE
        assert ev["ksm"] == 0 and ev["zero"] == 0, ev
    for ev in groups[1024]:
        # every dup and zero page, and nothing else: no page of another
        # group has this group's content (each group has its own seed)
        assert ev["ksm"] == dup and ev["zero"] == zero, ev
        # ksm_stat counts the whole process: the region plus a few pages
        assert ev["ksm"] <= ev["stat_merging"] <= ev["ksm"] + 64, ev
        assert ev["zero"] <= ev["stat_zero"] <= ev["zero"] + 64, ev
    for ev in groups[768]:
        assert ev["ksm"] == 0 and ev["zero"] == 0, ev
    for ev in groups[512]:
        assert ev["ksm"] == 0 and ev["zero"] == 0, ev
        assert ev["stat_merging"] == 0 and ev["stat_zero"] == 0, ev
    series = res.series()
    assert last(series, "pksm_excluded_pages") > 0
    assert res.summary["verify"] == "ok"


def test_a_freed_ksm_page_leaves_the_counts_at_once(run_scenario: RunScenario) -> None:
    """pages_shared and pages_sharing drop when the last mapping of a KSM
    page goes (the free hook), not when pksmd next wakes: here pksmd is
    asleep for a minute when every process mapping the KSM pages is killed,
    and the counts are read as soon as they are gone (every worker a
    zombie: once, with two vCPUs, one was still exiting when the shell's
    wait for their parent returned, and half the counts were read before
    its exit)."""
    freed = scenario('''[scenario]
variant = "pksm"
mem = "128M"
timeout = 120
[knobs.ksm]
run = 1
[knobs.pksm]
probation_scans = 0
[[workload]]
shell = """
counts() { echo "PKSMTB-EVENT counts when=$1 shared=$(cat /sys/kernel/mm/ksm/pages_shared) \\
sharing=$(cat /sys/kernel/mm/ksm/pages_sharing)"; }
dupalloc --procs 2 --mib 8 --dup 100 --hold 60 --seed 4 &
for i in $(seq 1 150); do
	[ "$(cat /sys/kernel/mm/ksm/pages_sharing)" -ge 1800 ] && break
	sleep 0.2
done
echo 60000 > /sys/kernel/mm/ksm/sleep_millisecs
sleep 1
counts merged
killall -9 dupalloc
wait
# The shell waits for dupalloc's parent only: a worker may still be
# exiting on the other vCPU.  Until each is a zombie (its memory gone).
for i in $(seq 1 200); do
	alive=0
	for p in $(pidof dupalloc); do
		grep -q '^State:.*Z' /proc/$p/status 2>/dev/null || alive=1
	done
	[ $alive = 0 ] && break
	sleep 0.05
done
counts freed
"""
''', "freed")
    res = run_scenario(freed, "pksm", check=False)
    got = {e.fields["when"]: e.ints() for e in res.console.events_named("counts")}
    assert got["merged"]["shared"] >= 1800 and got["merged"]["sharing"] >= 1800, got
    # the guest's own processes may hold a few KSM pages of their own
    assert got["freed"]["shared"] <= 64 and got["freed"]["sharing"] <= 64, got
