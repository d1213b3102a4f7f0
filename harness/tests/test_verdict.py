"""The verdict on captured consoles: every way a run can fail, and its exit code.

Consoles live under test_data/consoles/; each is judged as runner.finish
judges a run (KUnit summary from the console's KTAP, the scenario's
[expect], how the boot ended).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_DATA
from pksmtb import console, ktap
from pksmtb.verdict import ExitCode, Outcome, Verdict, judge

CONSOLES = TEST_DATA / "consoles"
# consoles/*.log without "real-" are written after the kernel's messages
# for the cases no boot here can produce on demand (KUnit failure, BUG,
# WARNING, KASAN, lockdep); real-*.log are captured consoles.


def verdict_of(name: str, outcome: Outcome | None = None,
               expect: dict[str, Any] | None = None,
               summary: dict[str, Any] | None = None) -> Verdict:
    con = console.Console.parse((CONSOLES / name).read_text())
    full = {"kunit": ktap.kunit_summary(con.lines), **(summary or {})}
    return judge(con, outcome or Outcome(), expect or {}, full)


@pytest.mark.parametrize("name,outcome,expect,code,needle", [
    ("pass.log", None, None, ExitCode.OK, None),
    ("kunit-failure.log", None, None, ExitCode.FAIL, "KUnit failures: pksm_test_budget, pksm"),
    ("warning.log", None, None, ExitCode.KERNEL,
     "WARNING: CPU: 0 PID: 14 at mm/pksm/merge.c:212"),
    ("bug.log", None, None, ExitCode.KERNEL, "BUG: Bad page state"),
    ("kasan.log", None, None, ExitCode.KERNEL, "BUG: KASAN: slab-use-after-free"),
    ("lockdep.log", None, None, ExitCode.KERNEL, "possible circular locking dependency"),
    ("panic.log", None, None, ExitCode.KERNEL,
     "kernel panic/oops:\n    [    0.820000] Kernel panic - not syncing: sysrq triggered crash"),
    ("oom.log", None, None, ExitCode.KERNEL, "Out of memory: Killed process 63 (dupalloc)"),
    ("timeout.log", Outcome(timed_out=True, timeout_s=5), None, ExitCode.TIMEOUT,
     "time-out after 5 s (guest killed)"),
    ("no-exit.log", None, None, ExitCode.KERNEL, "without reporting an exit status"),
    ("mismatch.log", None, None, ExitCode.FAIL, "page 100 offset 1234"),
    ("mismatch.log", None, {"exit": 1, "verify": "fail"}, ExitCode.OK, None),
    ("guest-error.log", None, None, ExitCode.FAIL, "rejected by the kernel"),
    ("pass.log", Outcome(signal=signal.SIGTERM), None, ExitCode.TERMINATED, "SIGTERM"),
    ("pass.log", Outcome(signal=signal.SIGHUP), None, ExitCode.HANGUP, "SIGHUP"),
    ("pass.log", Outcome(signal=signal.SIGINT), None, ExitCode.INTERRUPTED, "SIGINT"),
    ("pass.log", None, {"saved_fraction_min": 0.9}, ExitCode.FAIL, "below the expected 0.9"),
    # captured from real boots of the ksm build (test-merge, a sysrq crash,
    # four processes filling 64 MiB, a 5 s time-out)
    ("real-pass.log", None, None, ExitCode.OK, None),
    ("real-panic.log", None, None, ExitCode.KERNEL,
     "Kernel panic - not syncing: sysrq triggered crash"),
    ("real-oom.log", None, None, ExitCode.KERNEL, "guest OOM"),
    ("real-timeout.log", Outcome(timed_out=True, timeout_s=5), None, ExitCode.TIMEOUT,
     "time-out after 5 s"),
])
def test_verdict(name: str, outcome: Outcome | None, expect: dict[str, Any] | None,
                 code: ExitCode, needle: str | None) -> None:
    v = verdict_of(name, outcome, expect)
    assert v.code == code, v.problems
    if needle is None:
        assert v.problems == []
    else:
        assert needle in "\n".join(v.problems), v.problems


def test_most_serious_first() -> None:
    """A time-out with a panic in it is a time-out; both are reported."""
    v = verdict_of("panic.log", Outcome(timed_out=True, timeout_s=60))
    assert v.code == ExitCode.TIMEOUT
    assert [p.split(":")[0].split(" after")[0] for p in v.problems] == ["time-out",
                                                                        "kernel panic/oops"]


def test_exit_codes_are_stable() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 6, 129, 130, 143]
    assert ExitCode.for_signal(signal.SIGTERM) == 143


def test_ksft_problems_fail_the_run() -> None:
    v = verdict_of("pass.log", summary={"ksft": {"problems": ["t -M: exited 139"]}})
    assert v.code == ExitCode.FAIL and "t -M: exited 139" in v.problems[0]


def test_kunit_summary_from_console() -> None:
    con = console.Console.parse((CONSOLES / "kunit-failure.log").read_text())
    assert ktap.kunit_summary(con.lines) == {"passed": 2, "failed": ["pksm_test_budget", "pksm"],
                                             "skipped": 0}
    assert ktap.kunit_summary(console.Console.parse(
        (CONSOLES / "pass.log").read_text()).lines) is None


def test_events_json_roundtrip(tmp_path: Path) -> None:
    con = console.Console.parse((CONSOLES / "mismatch.log").read_text())
    path = console.write_events(con, tmp_path)
    data = json.loads(path.read_text())
    assert data["exit_status"] == 1 and "lines" not in data
    back = console.load_events(tmp_path)
    assert back.event("filled").ints()["achievable"] == 3276
    assert back.workload_status == {0: 1, 1: 0}
    assert back.verify_result() == "fail" and back.mismatches == con.mismatches
    with pytest.raises(console.EventMissing, match="no PKSMTB-EVENT nothing"):
        back.event("nothing")
