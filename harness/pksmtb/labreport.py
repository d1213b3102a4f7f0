"""What a lab grade shows, to a student or to the instructor.

Instructor mode shows everything: every check's points and details, the
measured values, which answers are right.  Student mode (the default of
``lab.py check``) seals the checks graded from the answers file: their
form is checked ("recorded", or what is malformed, by file and line) but
neither their points nor any measured value or key is shown, so answers
cannot be found by trial; they are graded after the deadline (``lab.py
batch``, always in instructor mode).  Code checks are shown in both modes.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol, Sequence

from . import junit

# Instructor mode from the environment (any value but "", "0", "no").
INSTRUCTOR_ENV = "PKSMTB_LAB_INSTRUCTOR"


def instructor_from_env() -> bool:
    return os.environ.get(INSTRUCTOR_ENV, "").strip().lower() not in ("", "0", "no", "false")


class CheckLike(Protocol):
    name: str
    points: int
    earned: int
    detail: str
    answers: bool
    shown: str

    @property
    def passed(self) -> bool: ...


class GradeLike(Protocol):
    lab: int
    submission: str
    error: str
    runs: list[str]
    record: dict[str, Any]
    notes: list[str]

    @property
    def checks(self) -> Sequence[CheckLike]: ...


def sealed(c: CheckLike, instructor: bool) -> bool:
    return c.answers and not instructor


def recorded(c: CheckLike) -> bool:
    """An answers check whose answers are well-formed (graded later):
    shown "recorded", or "recorded; " and what the student may see of it."""
    return c.shown == "recorded" or c.shown.startswith("recorded; ")


def report(g: GradeLike, instructor: bool) -> str:
    """The grade as printed: each check, the total, the run directories."""
    head = f"lab {g.lab}: {g.submission}"
    if g.record:
        head += " (" + ", ".join(f"{k} {v}" for k, v in g.record.items()) + ")"
    lines = [head]
    if g.error:
        lines.append(f"  error: {g.error}")
    lines += [f"  note: {n}" for n in g.notes]
    for c in g.checks:
        if sealed(c, instructor):
            lines.append(f"  [ -- ]  ?/{c.points:<2} {c.name}: {c.shown}")
        else:
            mark = "PASS" if c.passed else "part" if c.earned else "FAIL"
            lines.append(f"  [{mark}] {c.earned:>2}/{c.points:<2} {c.name}: {c.detail}")
    lines.append("  " + total(g, instructor))
    lines += [f"  run directory: {r}" for r in g.runs]
    return "\n".join(lines)


def total(g: GradeLike, instructor: bool) -> str:
    shown = [c for c in g.checks if not sealed(c, instructor)]
    hidden = [c for c in g.checks if sealed(c, instructor)]
    score = sum(c.earned for c in shown)
    out = f"total {score}/{sum(c.points for c in shown)}"
    if hidden:
        ok = all(recorded(c) for c in hidden)
        out = (f"{out} of the code checks" if shown else "") + \
            ("; " if shown else "") + \
            f"answers ({sum(c.points for c in hidden)} points) " + \
            ("recorded, graded by the instructor after the deadline" if ok else "NOT all recorded: fix them")
    return out


def to_json(g: GradeLike, instructor: bool) -> dict[str, Any]:
    """The grade for results JSON; student mode leaves out what is sealed."""
    checks = []
    for c in g.checks:
        if sealed(c, instructor):
            checks.append({"name": c.name, "points": c.points, "sealed": True,
                           "recorded": recorded(c), "detail": c.shown})
        else:
            checks.append({"name": c.name, "points": c.points, "earned": c.earned,
                           "passed": c.passed, "detail": c.detail})
    shown = [c for c in g.checks if not sealed(c, instructor)]
    return {"lab": g.lab, "submission": g.submission, "mode":
            "instructor" if instructor else "student",
            "score": sum(c.earned for c in shown), "total": sum(c.points for c in shown),
            "error": g.error, "notes": g.notes, "runs": g.runs, "record": g.record,
            "checks": checks}


def status(grades: Sequence[GradeLike], instructor: bool) -> int:
    """lab.py check's exit status: 2 a grade with an error; 0 every check
    shown passed (student mode: and every answer recorded); 1 otherwise."""
    if any(g.error for g in grades):
        return 2
    for g in grades:
        for c in g.checks:
            if not (recorded(c) if sealed(c, instructor) else c.passed):
                return 1
    return 0


def junit_suites(grades: Sequence[GradeLike], instructor: bool) -> list[junit.Suite]:
    """The grades as JUnit: a suite per submission, a case per check.

    Only what a student may see goes in, whatever the mode: a failed
    check's message is its student-visible form (``shown``: a code check's
    detail; an answers check's "recorded" or what is malformed), never the
    instructor's detail (measured values, keys, which answers are right).
    Points are properties of the suite (``<check>.points``, and
    ``<check>.earned`` unless sealed), since the common schema has none on
    a test case.  In student mode a sealed check is skipped when its
    answers are recorded, failed when they are malformed; in instructor
    mode it passes or fails by its points.  A grade's error (a submission
    that does not build) goes with every failed check and in the suite's
    output, and its notes (a stale copy's) there too."""
    suites = []
    for g in grades:
        name = re.sub(r"\s+", " ", g.submission).strip() or "submission"
        s = junit.Suite(f"lab {g.lab}: {name}",
                        out="\n".join(x for x in (g.error, *g.notes) if x))
        klass = f"lab{g.lab}." + (re.sub(r"[^\w.-]", "_", name.strip("/")) or "_")
        shown = [c for c in g.checks if not sealed(c, instructor)]
        s.properties = {"lab": str(g.lab), "submission": g.submission,
                        "mode": "instructor" if instructor else "student",
                        "score": str(sum(c.earned for c in shown)),
                        "total": str(sum(c.points for c in shown))}
        s.properties.update({f"record.{k}": str(v) for k, v in g.record.items()})
        for c in g.checks:
            s.properties[f"{c.name}.points"] = str(c.points)
            jc = junit.Case(c.name, klass)
            if sealed(c, instructor):
                if recorded(c):
                    jc.outcome = "skip"
                    jc.message = "answers recorded, graded after the deadline"
                else:
                    jc.outcome, jc.message = "fail", c.shown
                    jc.text = "\n".join(x for x in (c.shown, g.error) if x)
            else:
                s.properties[f"{c.name}.earned"] = str(c.earned)
                if not c.passed:
                    part = f"{c.earned}/{c.points} points"
                    jc.outcome = "fail"
                    jc.message = f"{part}: {c.shown}" if c.shown else part
                    jc.text = "\n".join(x for x in (jc.message, g.error) if x)
            s.cases.append(jc)
        suites.append(s)
    return suites
