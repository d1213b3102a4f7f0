"""A small KTAP parser (the format KUnit prints at boot, and kselftests).

Enough of KTAP v1 / TAP 13 for the testbed: version lines, plans, nested
suites by indentation, 'ok'/'not ok' result lines with SKIP directives,
'# ' diagnostic lines (kept with the result they precede: kselftests name
their cases there, "# [RUN] test_unmerge") and "Bail out!".  Lines from
the console carry a printk time prefix, which is stripped first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_RESULT = re.compile(r"^(ok|not ok) (\d+)(?: - |\s+)?([^#]*?)\s*(?:#\s*(.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)")
_RUN = re.compile(r"^\[RUN\]\s+(\S+)")


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

    @property
    def case(self) -> str:
        """The case's name: kselftest's '[RUN] name' line, else the description."""
        for d in self.diagnostics:
            m = _RUN.match(d)
            if m:
                return m.group(1)
        return self.name


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
            continue
        if stripped.startswith("Bail out!"):
            if rep.bail_out is None:
                rep.bail_out = stripped[len("Bail out!"):].strip()
            continue
        if stripped.startswith("#"):
            diags.setdefault(depth, []).append(stripped[1:].strip())
            continue
        m = _RESULT.match(stripped)
        if m:
            directive = (m.group(4) or "").strip()
            rep.results.append(Result(
                name=m.group(3).strip(), ok=m.group(1) == "ok",
                skipped=directive.upper().startswith("SKIP"), depth=depth,
                directive=directive, number=int(m.group(2)),
                diagnostics=diags.pop(depth, [])))
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
