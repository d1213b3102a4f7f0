"""Upstream kselftest results of a run, judged against the scenario.

The guest runner rootfs/selftests/ksm-selftests writes into the run
share's ksft/ directory:

    plan         the command lines it is going to run, one a line
    NN.tap       command NN's output (KTAP: stdout and stderr)
    NN.status    its exit status

Tests are named "<command> / <case>": the case is the kselftest's
"# [RUN] name" line before the result (ksm_functional_tests), else the
result's description (ksm_tests: "KSM merging").  A command is good when
it printed its plan and as many results as planned (a test that reports
nothing is a failure), every result passed or skipped for an allowed
reason, and it exited 0 without a "Bail out!" (after a failed result, its
"Bail out!" and exit status 1 are that failure, not another one).  The
scenario's [expect] says what else is accepted, each entry keyed by a
command line or a test name:

    [expect.ksft_skip]       # may skip; the value must appear in its message
    "ksm_tests -N -m 1" = "NUMA support not enabled"

    [expect.ksft_left_out]   # not judged on this build; the value says why
    "ksm_tests -U" = "counts pages system-wide ..."

Left-out tests still run; how they did is recorded, never judged.  An entry
that matches no test is a problem too (a stale list hides nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import junit, ktap

DIRNAME = "ksft"


@dataclass
class Case:
    test: str              # "<command> / <case>"
    outcome: str           # pass | fail | skip
    line: str              # what the kselftest said about it
    diagnostics: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)     # its lines (ktap.Result.log)


@dataclass
class Command:
    num: str
    cmd: str
    status: int | None = None          # None: never ran (or did not finish)
    planned: int | None = None
    cases: list[Case] = field(default_factory=list)
    bail_out: str | None = None


def _case_name(r: ktap.Result) -> str:
    if r.case:
        return r.case
    d = r.directive
    if d.upper().startswith("SKIP"):
        d = d[4:].strip()
    return d or f"#{r.number}"


def _outcome(r: ktap.Result) -> str:
    if r.skipped:
        return "skip"
    return "pass" if r.ok else "fail"


def load(directory: Path) -> list[Command] | None:
    """The commands the runner planned, with what each printed; None: no plan."""
    plan = directory / "plan"
    if not plan.is_file():
        return None
    cmds = []
    lines = [ln.strip() for ln in plan.read_text().splitlines() if ln.strip()]
    for i, cmd in enumerate(lines, 1):
        c = Command(num=f"{i:02d}", cmd=cmd)
        try:
            c.status = int((directory / f"{c.num}.status").read_text().strip())
        except (OSError, ValueError):
            c.status = None
        tap = directory / f"{c.num}.tap"
        if tap.is_file():
            rep = ktap.parse(tap.read_text(errors="replace").splitlines())
            top = [p for d, p in rep.plans if d == 0]
            c.planned = top[0] if top else None
            c.bail_out = rep.bail_out
            c.cases = [Case(f"{cmd} / {_case_name(r)}", _outcome(r), r.line, r.diagnostics,
                            r.log) for r in rep.top_level()]
        cmds.append(c)
    return cmds


def _entry(table: dict[str, str], c: Command, case: Case | None = None) -> str | None:
    """The key of TABLE that covers command C (or its CASE), if any."""
    if c.cmd in table:
        return c.cmd
    if case is not None and case.test in table:
        return case.test
    return None


def judge(commands: list[Command] | None, expect: dict[str, Any]) -> dict[str, Any] | None:
    """Counts, per-test outcomes and problems; None if there is nothing to judge."""
    skips: dict[str, str] = dict(expect.get("ksft_skip", {}))
    left: dict[str, str] = dict(expect.get("ksft_left_out", {}))
    if commands is None:
        if not skips and not left:
            return None
        return {"problems": [f"no kselftest results ({DIRNAME}/plan missing): "
                             "did the runner run?"]}
    used: set[str] = set()
    problems: list[str] = []
    out: dict[str, Any] = {"commands": len(commands), "planned": 0, "ran": 0,
                           "passed": [], "skipped": {}, "failed": [], "left_out": {}}
    for c in commands:
        whole = _entry(left, c)
        if whole:
            used.add(whole)
        mine: list[str] = []           # this command's problems
        failed = False                 # one of its results said "not ok"
        out["ran"] += len(c.cases)
        for case in c.cases:
            failed |= case.outcome == "fail"
            key = whole or _entry(left, c, case)
            if key:
                used.add(key)
                out["left_out"][case.test] = f"{case.outcome}: {case.line}"
                continue
            if case.outcome == "pass":
                out["passed"].append(case.test)
            elif case.outcome == "skip":
                skey = _entry(skips, c, case)
                said = " / ".join([*case.diagnostics, case.line])
                if skey is None:
                    mine.append(f"{case.test}: skipped, and no skip is allowed here: {said}")
                    continue
                used.add(skey)
                if skips[skey] not in said:
                    mine.append(f"{case.test}: skipped, but not because "
                                f"{skips[skey]!r}: {said}")
                    continue
                out["skipped"][case.test] = case.line
            else:
                out["failed"].append(case.test)
                diags = [d for d in case.diagnostics if not d.startswith("[RUN]")]
                mine.append(f"{case.test}: {case.line}"
                            + (f" ({' / '.join(diags[-3:])})" if diags else ""))
        # How the program ended.  A failed result explains a "Bail out!" and
        # exit status 1 (KSFT_FAIL: kselftests end that way after a failure);
        # anything else is a problem of its own, even for a left-out test.
        end = []
        if c.bail_out is not None:
            end.append(f"Bail out! {c.bail_out}")
        if c.status is None:
            end.append("no exit status (did not run to the end)")
        elif c.status:
            end.append(f"exited {c.status}"
                       + (" (the runner's time limit)" if c.status == 143 else ""))
        if c.planned is not None:
            out["planned"] += c.planned
        if c.planned is None and c.status is not None:
            mine.append(f"{c.cmd}: printed no KTAP plan" + "".join(f"; {e}" for e in end))
        elif c.planned is not None and len(c.cases) != c.planned:
            mine.append(f"{c.cmd}: planned {c.planned} tests, {len(c.cases)} reported"
                        + "".join(f"; {e}" for e in end))
        elif end and not (failed and c.status == 1):
            mine.append(f"{c.cmd}: " + "; ".join(end))
        if whole:
            # its results are not judged, but a crash (killed by a signal:
            # exit 128 + N, the runner's time limit included) or a program
            # that never ended is: leaving a test out never hides either
            if mine and (c.status is None or c.status >= 128):
                problems += [f"{m} (left out, but a crash or hang is never left out)"
                             for m in mine]
            elif mine:
                out["left_out"][c.cmd] = "; ".join(mine)
            continue
        problems += mine
    for table, what in ((skips, "ksft_skip"), (left, "ksft_left_out")):
        for key in table:
            if key not in used:
                problems.append(f"[expect.{what}] {key!r} matches no test that ran")
    out["problems"] = problems
    return out


def summarize(run_dir: Path, expect: dict[str, Any]) -> dict[str, Any] | None:
    return judge(load(run_dir / DIRNAME), expect)


def describe(summary: dict[str, Any] | None) -> str | None:
    """One line for the run's summary table."""
    if not summary or "passed" not in summary:
        return None
    text = (f"{len(summary['passed'])} passed, {len(summary['skipped'])} skipped, "
            f"{len(summary['failed'])} failed of {summary['planned']} planned")
    if summary["left_out"]:
        text += f"; {len(summary['left_out'])} left out"
    return text


def junit_suites(commands: list[Command] | None,
                 summary: dict[str, Any] | None) -> list[junit.Suite]:
    """The kselftests as JUnit, as judge() judged them: one suite per
    command ("ksft: <command>"), a case per result (a skip the scenario
    does not allow, or allows for another reason, is a failure; a left-out
    test is skipped, with how it did) and a case "(command)" for how it
    ended (plan, exit status, "Bail out!"); a suite "ksft" holds problems of
    no one command (no plan file, stale [expect] entries)."""
    if not summary:
        return []
    problems: list[str] = list(summary.get("problems", []))
    left: dict[str, str] = summary.get("left_out", {})
    skipped: dict[str, str] = summary.get("skipped", {})
    used: set[str] = set()
    suites = []
    for c in commands or []:
        s = junit.Suite(f"ksft: {c.cmd}")
        s.properties = {"command": c.cmd, "exit_status": "none" if c.status is None
                        else str(c.status), "planned": "none" if c.planned is None
                        else str(c.planned)}
        for case in c.cases:
            name = case.test[len(c.cmd) + 3:] if case.test.startswith(c.cmd + " / ") \
                else case.test
            jc = junit.Case(name, s.name, out="\n".join(case.log))
            mine = [p for p in problems if p.startswith(case.test + ": ")]
            used.update(mine)
            if case.test in left or c.cmd in left:
                jc.outcome, jc.message = "skip", f"left out (not judged): {left.get(case.test)}"
            elif mine:
                jc.outcome, jc.message, jc.out = "fail", mine[0], ""
                jc.text = "\n".join([*mine, *case.log])
            elif case.test in skipped:
                jc.outcome, jc.message = "skip", case.line
            s.cases.append(jc)
        end = junit.Case("(command)", s.name)
        mine = [p for p in problems if p.startswith(c.cmd + ": ")]
        used.update(mine)
        if c.cmd in left:
            end.outcome, end.message = "skip", f"left out (not judged): {left[c.cmd]}"
        elif mine:
            end.outcome, end.message, end.text = "fail", mine[0], "\n".join(mine)
        s.cases.append(end)
        suites.append(s)
    rest = [p for p in problems if p not in used]
    if rest:
        suites.append(junit.Suite("ksft", [junit.Case(
            "(kselftests)", "ksft", "fail", rest[0], "\n".join(rest))]))
    return suites
