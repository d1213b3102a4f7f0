"""A lab file's marked regions: the student's text, the rest the grader's.

A region is the lines between a ``LAB n BEGIN: hint`` line and the next
``LAB n END`` line (C: ``/* LAB 3 BEGIN: hint */`` ... ``/* LAB 3 END */``;
gdb, TOML, shell: ``# LAB 1 BEGIN: hint`` ... ``# LAB 1 END``), the marker
lines not in it.  A file is the text around its regions and the regions
(split()).  The skeleton and the student edition fill a file's regions
with other bodies, the markers kept (fill()); a student's copy is graded
as the current file with the copy's regions in it (splice()), and where
the copy differs from that outside its regions is said (differs()): the
file around the regions may have changed since the copy was made.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

MARK = re.compile(r"^(?P<indent>[ \t]*)(?P<open>/\*|#|//) LAB (?P<n>\d+) (?P<what>BEGIN|END)"
                  r"(?:: (?P<hint>.*?))?(?: \*/)?\s*$")


class RegionError(Exception):
    """Marker lines that do not pair up, or regions that do not match."""


@dataclass
class Region:
    line: int               # its BEGIN line's number (from 1)
    begin: str              # the BEGIN line as it is, its line end kept
    body: str               # the lines between, as they are
    end: str                # the END line
    indent: str             # the BEGIN line's
    opener: str             # its comment: "/*", "#" or "//"
    hint: str               # after "BEGIN: "; "" if none


@dataclass
class Marked:
    outside: list[str]      # the text around the regions: one piece more than regions
    regions: list[Region]


def split(text: str, n: int, where: str) -> Marked:
    """TEXT's LAB N regions and the text around them; RegionError naming
    WHERE and the line if its LAB N marker lines do not pair up, or if a
    line names a LAB N marker without being one."""
    outside, regions = [""], []
    begin: re.Match[str] | None = None
    at, begin_line, body = 0, "", ""
    name = re.compile(rf"\bLAB {n} (BEGIN|END)\b")
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        m = MARK.match(line.rstrip("\r\n"))
        if not (m and int(m["n"]) == n):
            if name.search(line):
                raise RegionError(f"{where}:{lineno}: not a LAB {n} marker line as the "
                                  f"lab writes them: `{line.strip()[:80]}`")
            if begin:
                body += line
            else:
                outside[-1] += line
            continue
        if m["what"] == "BEGIN":
            if begin:
                raise RegionError(f"{where}:{lineno}: a second LAB {n} BEGIN inside the "
                                  f"region begun at line {at}")
            begin, at, begin_line, body = m, lineno, line, ""
            continue
        if not begin:
            raise RegionError(f"{where}:{lineno}: LAB {n} END without BEGIN")
        regions.append(Region(at, begin_line, body, line, begin["indent"], begin["open"],
                              begin["hint"] or ""))
        outside.append("")
        begin = None
    if begin:
        raise RegionError(f"{where}:{at}: the LAB {n} region begun here is not ended")
    return Marked(outside, regions)


def fill(m: Marked, bodies: list[str]) -> str:
    """M's text with its regions' bodies BODIES (as they are), the markers kept."""
    if len(bodies) != len(m.regions):
        raise RegionError(f"{len(bodies)} bodies for {len(m.regions)} regions")
    out = [m.outside[0]]
    for r, body, after in zip(m.regions, bodies, m.outside[1:]):
        out += [r.begin, body, r.end, after]
    return "".join(out)


def indented(text: str, indent: str) -> str:
    """TEXT's lines, each (but blank ones) after INDENT, each ended."""
    return "".join(f"{indent}{s}\n" if s.strip() else "\n" for s in text.splitlines())


def comment(r: Region, text: str) -> str:
    """A line of TEXT, commented and indented as R's markers are."""
    return f"{r.indent}{r.opener} {text}{' */' if r.opener == '/*' else ''}\n"


def splice(copy: str, current: str, n: int, where: str, current_where: str) -> str:
    """CURRENT with its LAB N regions' bodies COPY's (WHERE: a student's
    copy of it, perhaps made from an older CURRENT_WHERE): what is built
    and graded.  RegionError if COPY's markers do not pair up or its
    regions are not as many as CURRENT's."""
    mine = split(copy, n, where)
    now = split(current, n, current_where)
    if len(mine.regions) != len(now.regions):
        raise RegionError(f"{where}: {len(mine.regions)} LAB {n} regions (a LAB {n} BEGIN "
                          f"line, your text, a LAB {n} END line), {current_where} has "
                          f"{len(now.regions)}")
    return fill(now, [r.body for r in mine.regions])


def _norm(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.splitlines()]


def differs(copy: str, graded: str, where: str, current_where: str) -> str:
    """"" if COPY is GRADED (splice()'s, from COPY) but for blanks at line
    ends, else where they first differ and in how many lines: the text
    outside the regions, which the grader takes from CURRENT_WHERE."""
    a, b = _norm(copy), _norm(graded)
    ops = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    if not ops:
        return ""
    lines = sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in ops)
    _, i, _, j, _ = ops[0]

    def at(text: list[str], k: int) -> str:
        return f"`{text[k].strip()[:60]}`" if k < len(text) else "its end"
    return (f"{where} differs from {current_where} outside its regions in {lines} "
            f"line{'s' if lines != 1 else ''}, the first at line {i + 1} ({at(a, i)}; "
            f"{current_where}'s line {j + 1}: {at(b, j)})")
