"""PKSM under the shapes real programs make (issue: engine round two).

One boot runs rootfs/src/shapes.c's shapes one after another
(harness/scenarios/pksm-shapes.toml); each prints its figures and the
daemon's counter changes while it ran, judged here shape by shape, then
the run as a whole (verification, console reports).
"""

from __future__ import annotations

import pytest

from conftest import RunScenario, explain
from pksmtb.console import Console

pytestmark = pytest.mark.boot


def shape_events(con: Console) -> dict[str, dict[str, str]]:
    """name -> the figures of its 'shape' event."""
    return {e.fields["name"]: e.fields for e in con.events_named("shape")}


def test_shapes(run_scenario: RunScenario) -> None:
    res = run_scenario("pksm-shapes", "pksm", check=False)
    console = res.console_text
    shapes = shape_events(res.console)
    assert set(shapes) == {"mremap", "fork-optout", "pinned", "structured", "madvfree",
                           "hotword"}, \
        console[-3000:]
    for name in ("mremap", "fork-optout", "pinned", "structured", "madvfree"):
        assert shapes[name]["result"] == "pass", (name, shapes[name])
    # A lookup costs O(log n) page compares whatever the content: 2 x 4096
    # pages that share one sampled hash (zero but for one word) may not be
    # compared with each other one by one (that was ~4,000 compares a page).
    pages = 2 * int(shapes["structured"]["pages"])
    assert int(shapes["structured"]["hash_false_positives"]) <= 64 * pages, shapes["structured"]
    # Pages rewritten every 20 ms in one word outside any sample never pass
    # probation; the few that slip through back off after their COW break.
    hot = shapes["hotword"]
    assert hot["result"] == "pass", hot
    # (before: a merge-COW cycle every 20-40 ms, ~100 breaks a page in 6 s)
    assert int(hot["cow_breaks"]) <= 3 * int(hot["pages"]), hot
    assert res.exit_code == 0, explain(res)
    assert res.summary["verdict"] == "pass", res.summary
