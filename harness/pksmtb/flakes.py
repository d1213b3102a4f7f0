"""Flake hunting: the rounds of 'make flake-hunt' read back and judged.

make flake-hunt runs the same tests N times, one pytest session a round,
each writing pytest's JUnit XML to results/flake/<UTC>/roundK.xml
(K = 1..N).  This module reads the rounds and tabulates every test that
did not pass in every round: how often it passed, failed, errored, was
skipped or was absent (not in a round's XML at all), and the first line of
its first failure.  A test is

    flaky    passed in some rounds and not in others
    failed   never passed, failed or errored at least once
    skipped  skipped in every round
    varied   never passed nor failed: skipped in some rounds, absent in others

and the hunt fails (exit 1) if any test is flaky, failed or varied; a test
skipped in every round only shows in the table.  Bad input (no such
directory, no rounds, a round missing or not JUnit XML, no test at all)
is a FlakeError, exit 2 at the command line.

A round's test is pytest's testcase classname::name.  pytest writes a
test that failed in its call and again in its teardown as two testcases
of that id; the round counts it once, by its worst outcome
(failed > error > skipped > passed).  An xfail is a skip, a strict xpass
a failure, as pytest writes them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .benchstats import format_table
from .junit import one_line

ROOT = paths.TOP / "results" / "flake"
OUTCOMES = ("passed", "failed", "error", "skipped", "absent")
_WORST = {"failed": 3, "error": 2, "skipped": 1, "passed": 0}
_CHILD = {"failure": "failed", "error": "error", "skipped": "skipped"}
_ROUND = re.compile(r"round(\d+)\.xml")
MESSAGE_WIDTH = 100          # characters of the first failure shown in the table


class FlakeError(Exception):
    """The rounds cannot be read: no directory, no rounds, bad XML."""


@dataclass(frozen=True)
class Outcome:
    outcome: str                 # passed | failed | error | skipped
    message: str = ""            # one line: why it failed (or was skipped)


@dataclass
class Tally:
    """One test over the rounds."""

    test: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    first_failure: str = ""      # "round K: <first line>" of its first failure or error

    def verdict(self) -> str:
        """passed (every round), flaky, failed, skipped or varied."""
        c = self.counts
        if c["passed"] and not any(c[o] for o in OUTCOMES if o != "passed"):
            return "passed"
        if c["passed"]:
            return "flaky"
        if c["failed"] or c["error"]:
            return "failed"
        return "varied" if c["absent"] else "skipped"


def read_round(path: Path) -> dict[str, Outcome]:
    """test id -> its outcome in the pytest JUnit XML at PATH."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise FlakeError(f"{path}: not JUnit XML ({e})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise FlakeError(f"{path}: not JUnit XML (root <{root.tag}>)")
    out: dict[str, Outcome] = {}
    for case in root.iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        now = Outcome("passed")
        for child in case:
            kind = _CHILD.get(child.tag)
            if kind is not None and _WORST[kind] > _WORST[now.outcome]:
                now = Outcome(kind, one_line(child.get("message") or child.text or "")
                              or child.tag)
        before = out.get(test)
        if before is None or _WORST[now.outcome] > _WORST[before.outcome]:
            out[test] = now
    return out


def round_files(d: Path) -> list[Path]:
    """DIR/round1.xml .. roundN.xml, in order; every one of 1..N must be there."""
    if not d.is_dir():
        raise FlakeError(f"{d}: no such directory (make flake-hunt writes "
                         f"{ROOT.relative_to(paths.TOP)}/<UTC>/roundK.xml)")
    found = {int(m.group(1)): p for p in d.iterdir() if (m := _ROUND.fullmatch(p.name))}
    if not found:
        raise FlakeError(f"{d}: no round1.xml, round2.xml, ... in it")
    missing = [k for k in range(1, max(found) + 1) if k not in found]
    if missing:
        raise FlakeError(f"{d}: round(s) {', '.join(map(str, missing))} missing of "
                         f"1..{max(found)} (a round stopped before pytest wrote its XML?)")
    return [found[k] for k in sorted(found)]


def latest(root: Path = ROOT) -> Path:
    """The newest hunt under ROOT (the directory names are UTC times)."""
    hunts = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not hunts:
        raise FlakeError(f"{root}: no flake hunt yet (make flake-hunt N=5)")
    return hunts[-1]


def tally(rounds: list[dict[str, Outcome]]) -> dict[str, Tally]:
    """test id -> its tally over ROUNDS (a test missing from a round is absent there)."""
    tests = sorted({t for r in rounds for t in r})
    out = {t: Tally(t) for t in tests}
    for k, r in enumerate(rounds, 1):
        for t in tests:
            o = r.get(t)
            tl = out[t]
            tl.counts[o.outcome if o else "absent"] += 1
            if o and o.outcome in ("failed", "error") and not tl.first_failure:
                tl.first_failure = f"round {k}: {o.message}"
    return out


_ORDER = {"flaky": 0, "failed": 1, "varied": 2, "skipped": 3}


def bad(tallies: dict[str, Tally]) -> list[Tally]:
    """The tests that did not pass in every round: flaky first, then
    failed, varied, skipped; by name within each."""
    return sorted((t for t in tallies.values() if t.verdict() != "passed"),
                  key=lambda t: (_ORDER[t.verdict()], t.test))


def failing(tallies: dict[str, Tally]) -> bool:
    """Did any test vary or fail (the hunt's exit status 1)?"""
    return any(t.verdict() in ("flaky", "failed", "varied") for t in tallies.values())


def table(tallies: dict[str, Tally]) -> str:
    """The tests that did not pass in every round, one line each."""
    rows: list[tuple[str, ...]] = [("test", "verdict", *OUTCOMES, "first failure")]
    for t in bad(tallies):
        msg = t.first_failure
        if len(msg) > MESSAGE_WIDTH:
            msg = msg[:MESSAGE_WIDTH - 3] + "..."
        rows.append((t.test, t.verdict(), *(str(t.counts[o]) for o in OUTCOMES), msg))
    return "\n".join(format_table(rows, left=(0, 1, 7)))


def report(d: Path) -> tuple[str, bool]:
    """The text for the hunt in D and whether it failed (FlakeError for bad input)."""
    files = round_files(d)
    tallies = tally([read_round(p) for p in files])
    if not tallies:
        raise FlakeError(f"{d}: no test in any of its {len(files)} round(s) "
                         "(did K or TESTS select none?)")
    n, shown = len(files), bad(tallies)
    head = f"flakes: {d}: {n} round(s), {len(tallies)} test(s)"
    if not shown:
        return f"{head}: every test passed in every round", False
    verdicts = [t.verdict() for t in shown]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in _ORDER if v in verdicts)
    return f"{head}: {counts}\n{table(tallies)}", failing(tallies)
