"""A small KTAP parser (the format KUnit prints at boot).

Enough of KTAP v1 for the testbed: version lines, plans, nested suites by
indentation, 'ok'/'not ok' result lines with SKIP directives.  Lines from
the console carry a printk time prefix, which is stripped first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_RESULT = re.compile(r"^(ok|not ok) (\d+)(?: - |\s+)?([^#]*?)\s*(?:#\s*(.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)")


@dataclass
class Result:
    name: str
    ok: bool
    skipped: bool
    depth: int
    directive: str = ""


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    plans: list[tuple[int, int]] = field(default_factory=list)  # (depth, count)
    seen_version: bool = False

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
        m = _RESULT.match(stripped)
        if m:
            directive = (m.group(4) or "").strip()
            rep.results.append(Result(
                name=m.group(3).strip(), ok=m.group(1) == "ok",
                skipped=directive.upper().startswith("SKIP"), depth=depth,
                directive=directive))
    return rep
