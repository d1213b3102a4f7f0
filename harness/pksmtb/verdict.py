"""The verdict of a run: an exit code and the reasons, most serious first.

    0  ok
    1  the run failed its checks: workload verification, exit status,
       KUnit or kselftest failures, expectations
    2  bad input (scenario, command line)
    3  a build the run needs is missing, or the kernel that booted is not
       the build the run recorded (its banner carries another build id)
    4  the kernel is in trouble: panic, oops, OOM, BUG/WARNING/KASAN/lockdep
       report, or the guest stopped without reporting
    5  time-out
    6  hung: the guest's console printed nothing for the watchdog's limit
       (its backtrace is in hang-backtrace.txt)
    129, 130, 143  stopped by SIGHUP, Ctrl-C (SIGINT), SIGTERM
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from .console import Console


class ExitCode(IntEnum):
    OK = 0
    FAIL = 1
    USAGE = 2
    BUILD = 3
    KERNEL = 4
    TIMEOUT = 5
    HUNG = 6
    HANGUP = 128 + signal.SIGHUP
    INTERRUPTED = 128 + signal.SIGINT
    TERMINATED = 128 + signal.SIGTERM

    @classmethod
    def for_signal(cls, signum: int) -> ExitCode:
        """How a run stopped by SIGNUM exits (as a shell reports it)."""
        return {signal.SIGHUP: cls.HANGUP, signal.SIGTERM: cls.TERMINATED}.get(
            signal.Signals(signum), cls.INTERRUPTED)


@dataclass
class Outcome:
    """How the boot ended, as far as the verdict cares."""

    timed_out: bool = False
    timeout_s: float = 0.0
    signal: int = 0              # the stop signal if interrupted, else 0
    hung: bool = False           # the watchdog stopped it
    watchdog_s: float = 0.0      # the watchdog's limit
    backtrace: str = ""          # how the hung guest's backtrace was taken ('' if none)


@dataclass
class Verdict:
    code: ExitCode = ExitCode.OK
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.code == ExitCode.OK

    def add(self, code: ExitCode, problem: str) -> None:
        """Record a problem; the first, most serious code found stays."""
        self.problems.append(problem)
        if self.code == ExitCode.OK:
            self.code = code


def _lines(lines: list[str], n: int) -> str:
    return ":\n    " + "\n    ".join(lines[:n])


def judge(con: Console, outcome: Outcome, expect: dict[str, Any],
          summary: dict[str, Any]) -> Verdict:
    """The verdict on a run from its console, how it ended, what the
    scenario expects ([expect]) and its summary (kunit, ksft, saved_fraction)."""
    v = Verdict()
    if outcome.signal:
        v.add(ExitCode.for_signal(outcome.signal),
              f"interrupted by {signal.Signals(outcome.signal).name}")
        return v
    check = summary.get("build_check") or {}
    if check.get("status") == "mismatch":
        v.add(ExitCode.BUILD, f"wrong kernel: {check.get('detail', '')}")
    if outcome.timed_out:
        v.add(ExitCode.TIMEOUT, f"time-out after {outcome.timeout_s:g} s (guest killed)")
    if outcome.hung:
        taken = f"backtrace ({outcome.backtrace}) in" if outcome.backtrace else \
            "no backtrace could be taken, see"
        v.add(ExitCode.HUNG, f"hung: no output for {outcome.watchdog_s:g} s "
                             f"(guest killed; {taken} hang-backtrace.txt)")
    if con.panic or con.oops:
        v.add(ExitCode.KERNEL, "kernel panic/oops" + _lines(con.panic + con.oops, 10))
    if con.oom:
        v.add(ExitCode.KERNEL, "guest OOM" + _lines(con.oom, 5))
    if con.reports:
        v.add(ExitCode.KERNEL, "kernel error reports" + _lines(con.reports, 10))
    if con.errors:
        v.add(ExitCode.FAIL, "guest script errors" + _lines(con.errors, 10))
    if con.forged:
        v.add(ExitCode.FAIL, "protocol lines without this boot's nonce, ignored (a guest "
                             "program printing them; or a guest root older than the "
                             "harness: make rootfs)" + _lines(con.forged, 5))
    if con.exit_status is None and not outcome.timed_out and not outcome.hung:
        v.add(ExitCode.KERNEL,
              "the guest stopped without reporting an exit status (see console.log)")
    online, asked = summary.get("vcpus_online"), summary.get("vcpus")
    if online is not None and asked is not None and online != asked:
        v.add(ExitCode.KERNEL, f"the guest brought up {online} vCPUs, the run asked for {asked}")
    want_exit = expect.get("exit", 0)
    if con.exit_status is not None and con.exit_status != want_exit:
        v.add(ExitCode.FAIL, f"run script exited {con.exit_status}, expected {want_exit}")
    verify = con.verify_result()
    want_verify = expect.get("verify", "ok" if verify is not None else None)
    if want_verify is not None and verify != want_verify:
        what = "workload verification failed" if verify == "fail" else \
            f"workload verification: got {verify}, expected {want_verify}"
        if con.mismatches:
            what += _lines(con.mismatches, 10)
        v.add(ExitCode.FAIL, what)
    kunit = summary.get("kunit") or {}
    if kunit.get("failed"):
        v.add(ExitCode.FAIL, "KUnit failures: " + ", ".join(kunit["failed"]))
    kst = summary.get("ksft") or {}
    if kst.get("problems"):
        v.add(ExitCode.FAIL, "kselftest failures" + _lines(kst["problems"], 30))
    need = expect.get("saved_fraction_min")
    if need is not None:
        got = summary.get("saved_fraction")
        if got is None or got < need:
            v.add(ExitCode.FAIL, f"saved/achievable {got} below the expected {need}")
    return v
