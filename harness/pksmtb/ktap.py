"""A small KTAP parser (the format KUnit prints at boot, and kselftests).

Enough of KTAP v1 / TAP 13 for the testbed: version lines, plans, nested
suites by indentation, 'ok'/'not ok' result lines with SKIP directives,
'# ' diagnostic lines (kept with the result they precede: kselftests name
their cases there, "# [RUN] test_unmerge") and "Bail out!".  Lines from
the console carry a printk time prefix, which is stripped first.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from . import junit

_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_RESULT = re.compile(r"^(ok|not ok) (\d+)(?: - |\s+)?([^#]*?)\s*(?:#\s*(.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)")
_RUN = re.compile(r"^\[RUN\]\s+(\S+)")
_SUBTEST = re.compile(r"^Subtest:\s*(\S+)")
LOG_MAX = 200            # lines of log a result keeps (the last ones)


@dataclass
class Result:
    name: str
    ok: bool
    skipped: bool
    depth: int
    directive: str = ""
    number: int = 0
    # '# ' lines at this depth since the previous result there, without '# '
    diagnostics: list[str] = field(default_factory=list)
    # every line at this depth or deeper since the previous result line or
    # plan of any depth (diagnostics, KUnit's "Expected ..." lines; the last
    # LOG_MAX), with this depth's indentation removed
    log: list[str] = field(default_factory=list)

    @property
    def case(self) -> str:
        """The case's name: kselftest's '[RUN] name' line, else the description."""
        for d in self.diagnostics:
            m = _RUN.match(d)
            if m:
                return m.group(1)
        return self.name

    @property
    def line(self) -> str:
        """The result line as printed, number and directive included."""
        text = f"{'ok' if self.ok else 'not ok'} {self.number}"
        if self.name:
            text += f" {self.name}"
        if self.directive:
            text += f" # {self.directive}"
        return text


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    plans: list[tuple[int, int]] = field(default_factory=list)  # (depth, count)
    seen_version: bool = False
    bail_out: str | None = None          # the text of a "Bail out!" line

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.ok and not r.skipped]

    @property
    def passed(self) -> list[Result]:
        return [r for r in self.results if r.ok and not r.skipped]

    def top_level(self) -> list[Result]:
        return [r for r in self.results if r.depth == 0]


def parse(lines: list[str]) -> Report:
    rep = Report()
    diags: dict[int, list[str]] = {}
    # (depth, line) since the last result: a console may print much between
    since: deque[tuple[int, str]] = deque(maxlen=LOG_MAX)
    for raw in lines:
        line = _PREFIX.sub("", raw.rstrip("\r\n"))
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 4
        if stripped.startswith(("KTAP version", "TAP version")):
            rep.seen_version = True
            continue
        if not rep.seen_version:
            continue
        m = _PLAN.match(stripped)
        if m:
            rep.plans.append((depth, int(m.group(1))))
            since.clear()        # a suite's header ("# Subtest: ...") is not a case's log
            continue
        if stripped.startswith("Bail out!"):
            if rep.bail_out is None:
                rep.bail_out = stripped[len("Bail out!"):].strip()
            since.append((depth, line))
            continue
        if stripped.startswith("#"):
            diags.setdefault(depth, []).append(stripped[1:].strip())
            since.append((depth, line))
            continue
        m = _RESULT.match(stripped)
        if m:
            directive = (m.group(4) or "").strip()
            rep.results.append(Result(
                name=m.group(3).strip(), ok=m.group(1) == "ok",
                skipped=directive.upper().startswith("SKIP"), depth=depth,
                directive=directive, number=int(m.group(2)),
                diagnostics=diags.pop(depth, []),
                log=[ln[4 * depth:] for d, ln in since if d >= depth and ln.strip()]))
            since.clear()
            continue
        since.append((depth, line))
    return rep


def kunit_summary(lines: list[str]) -> dict[str, object] | None:
    """KUnit results the kernel printed at boot, if any ran: test cases
    passed and skipped (the innermost results), failed names."""
    rep = parse(lines)
    if not rep.results:
        return None
    # Test cases are the innermost results; a suite's own line sums them up.
    depth = max(r.depth for r in rep.results)
    cases = [r for r in rep.results if r.depth == depth]
    return {"passed": sum(1 for r in cases if r.ok and not r.skipped),
            "failed": [r.name for r in rep.failed],
            "skipped": sum(1 for r in cases if r.skipped)}


# ---- the results as a tree, and as JUnit ------------------------------------

@dataclass
class Node:
    """A result with the results nested under it (a suite's cases).  A suite
    whose own result line never came (the kernel stopped in it) has none."""

    name: str
    result: Result | None
    children: list[Node] = field(default_factory=list)

    def leaves_failed(self) -> bool:
        return any((c.result is not None and not c.children and not c.result.ok
                    and not c.result.skipped) or c.leaves_failed() for c in self.children)


def _unfinished(kids: list[Node]) -> Node:
    """A suite with no result line, named by its "# Subtest:" line if any."""
    for k in kids[:1]:
        for d in k.result.diagnostics if k.result else []:
            m = _SUBTEST.match(d)
            if m:
                return Node(m.group(1), None, kids)
    return Node("unfinished", None, kids)


def tree(rep: Report) -> list[Node]:
    """The top-level results, each with its subtests.  KTAP prints a suite's
    cases (one level deeper) before the suite's own result line."""
    pending: dict[int, list[Node]] = {}
    for r in rep.results:
        kids = pending.pop(r.depth + 1, [])
        for d in sorted((d for d in pending if d > r.depth + 1), reverse=True):
            kids.append(_unfinished(pending.pop(d)))
        pending.setdefault(r.depth, []).append(Node(r.name, r, kids))
    roots = pending.pop(0, [])
    for d in sorted(pending):
        roots.append(_unfinished(pending[d]))
    return roots


def junit_case(r: Result, classname: str, name: str | None = None) -> junit.Case:
    """One result as a JUnit test case: a failure with its diagnostic lines,
    a skip with its reason."""
    log = "\n".join(r.log)
    case = junit.Case(name or r.name or f"#{r.number}", classname)
    if r.skipped:
        case.outcome = "skip"
        case.message = r.directive[4:].strip() or r.line
        case.text = log
    elif not r.ok:
        case.outcome = "fail"
        case.message = r.line
        case.text = "\n".join([*r.log, r.line])
    else:
        case.out = log
    return case


def junit_suites(rep: Report, prefix: str = "kunit") -> list[junit.Suite]:
    """One JUnit suite per KTAP level that has results: PREFIX holds the
    top-level results without subtests, PREFIX.<suite> a suite's cases,
    PREFIX.<suite>.<sub> a nested suite's.  A suite that failed while none
    of its cases did (it crashed, or its init failed) gets a case of its
    own; one that never printed its result line gets an error case."""
    out: list[junit.Suite] = []
    top = junit.Suite(prefix)

    def walk(nodes: list[Node], suite: junit.Suite, path: str) -> None:
        for n in nodes:
            if not n.children and n.result is not None:
                suite.cases.append(junit_case(n.result, path))
                continue
            sub = junit.Suite(f"{path}.{n.name}")
            out.append(sub)
            walk(n.children, sub, sub.name)
            if n.result is None:
                sub.cases.append(junit.Case(
                    "(suite result)", sub.name, "error",
                    "no result line: the suite did not finish (the kernel stopped in it?)"))
            elif not n.result.ok and not n.result.skipped and not n.leaves_failed():
                sub.cases.append(junit_case(n.result, sub.name, "(suite result)"))
            elif n.result.skipped and not sub.cases:
                sub.cases.append(junit_case(n.result, sub.name, "(suite result)"))

    walk(tree(rep), top, prefix)
    if rep.bail_out is not None:
        top.cases.append(junit.Case("Bail out!", prefix, "error", rep.bail_out or "Bail out!"))
    return ([top] if top.cases else []) + out
