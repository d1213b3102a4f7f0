"""Upstream's KSM selftests in the guest, on upstream KSM and on PKSM.

rootfs/selftests/ksm-selftests runs ksm_functional_tests and every
ksm_tests invocation that applies (built from the kernel tree, see
rootfs/selftests/Makefile) and leaves their KTAP output in the run's ksft/
directory; the harness judges it (harness/pksmtb/ksft.py) against the
scenario: every planned test must have reported and passed.  The only skips
allowed are the ones UML cannot avoid (UML_SKIPS, the same on both
builds).  On pksm the scenario (harness/scenarios/pksm-selftests.toml)
boots with pksm.opted_in_only=1, so that PKSM merges only opted-in memory
as upstream does and the tests of exact system-wide and per-process counts
apply: none is left out.  (The scenario format can still leave a test out
with a reason, ksft_left_out; it then runs and its outcome is printed here.)
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import RunScenario, explain, unreadable
from pksmtb import config

pytestmark = pytest.mark.boot

SCENARIOS = {"ksm": "ksm-selftests", "pksm": "pksm-selftests"}

# Tests that skip on UML, and why: no CONFIG_NUMA, no transparent hugepages,
# CONFIG_USERFAULTFD off in the testbed's configs (and no UFFD-WP on UML).
UML_SKIPS = {
    "ksm_tests -N -m 1 / KSM NUMA merging",
    "ksm_tests -N -m 0 / KSM NUMA merging",
    "ksm_tests -H -s 100 / KSM merge time with huge pages",
    "ksm_functional_tests / test_unmerge_uffd_wp",
}
# 7.3.4's ksm_functional_tests, with userfaultfd (ksft_set_plan(9 + 1));
# 6.12 had 8 + 1: 7.x added test_fork_ksm_merging_page_count.
FUNCTIONAL_TESTS = 10


@pytest.mark.parametrize("build", ["ksm", "pksm"])
def test_upstream_ksm_selftests(run_scenario: RunScenario, build: str) -> None:
    res = run_scenario(SCENARIOS[build], build, check=False)
    run_dir, summary, output = res.run_dir, res.summary, explain(res)
    k: dict[str, Any] = summary["ksft"]
    assert k is not None, output
    left_out = k["left_out"]
    if left_out:
        print(f"left out on {build} (not judged):")
        for test, outcome in left_out.items():
            print(f"  {test}: {outcome}")
    # every planned test of every command reported, none failed
    assert k["problems"] == [], "\n".join(k["problems"])
    assert summary["verdict"] == "pass", output
    assert k["planned"] == k["ran"] and not k["failed"]
    commands = (run_dir / "ksft" / "plan").read_text().split("\n")
    assert k["commands"] == len([c for c in commands if c.strip()]) >= 15
    # skips only where UML cannot run the test
    assert set(k["skipped"]) == UML_SKIPS
    counted = len(k["passed"]) + len(k["skipped"]) + len(left_out)
    assert counted == k["planned"], k
    func = [t for t in [*k["passed"], *k["skipped"], *left_out]
            if t.startswith("ksm_functional_tests / ")]
    assert len(func) == FUNCTIONAL_TESTS, func
    # the fork/exec test re-executes the program from the run share, not
    # from its own directory (the patched ksm_functional_tests)
    assert "ksm_functional_tests / test_prctl_fork_exec" in k["passed"]
    expect = config.load_scenario(SCENARIOS[build]).expect
    # nothing is left out on either build any more
    assert not left_out and "ksft_left_out" not in expect
    if build == "pksm":
        assert res.console.knobs["pksm/probation_scans"] == "0"
        assert "pksm.opted_in_only=1" in res.meta["kernel_command_line"]
        # booted with pksm.opted_in_only=1, the tests of exact system-wide
        # and per-process counts pass; the two -Z -z 0 ones passed now and
        # then before pages still in a per-cpu LRU batch were retried
        # within the same full scan
        # pages born in the frames of unstable pages just freed (their items
        # still in the table) are merged two full scans after they opt in,
        # as ksm_tests -Z expects; the window was met (a quarter at least)
        reborn = {e.fields["name"]: e.fields for e in res.console.events_named("shape")}
        assert reborn.get("reborn", {}).get("result") == "pass", (reborn, output)
        # a figure read as -1 would pass both checks below (-1 == -1)
        assert not unreadable(reborn), reborn
        pages = int(reborn["reborn"]["pages"])
        assert int(reborn["reborn"]["reborn"]) >= pages // 4
        assert int(reborn["reborn"]["merged"]) == pages
        for t in ("ksm_tests -M -p 10 / KSM merging", "ksm_tests -U / KSM unmerging",
                  "ksm_tests -Z -p 10 -z 0 / KSM zero page merging",
                  "ksm_tests -Z -p 10 -z 0 -t 1 / KSM zero page merging",
                  "ksm_functional_tests / test_unmerge_zero_pages"):
            assert t in k["passed"], (t, k["passed"])
