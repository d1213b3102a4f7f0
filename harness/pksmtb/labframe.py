"""A lab file whose frame is fixed: the student writes only its marked
regions, and the rest must be the skeleton's, line for line (trailing
blanks and line ends aside).  Lab 6's program prints what the grader
scores; a student's copy changed outside classify() could print anything.

The frame is the skeleton with each region (its TODO line and its stub)
cut out; a submission keeps the frame if its text is the frame's pieces,
in order, with anything between them.
"""

from __future__ import annotations

import re

# What the skeleton's regions are replaced by to find the frame.
CUT = "\0LAB-REGION\0"


def _norm(text: str) -> str:
    return "\n".join(ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n"))


def pieces(cut_skeleton: str, n: int) -> list[str]:
    """The frame of a skeleton whose stubs are CUT: the text around its regions."""
    region = re.compile(rf"[^\n]*TODO \(lab {n}\)[^\n]*\n[^\n]*{re.escape(CUT)}[^\n]*\n")
    return [_norm(p) for p in region.split(cut_skeleton)]


def changed(frame: list[str], text: str, name: str) -> str:
    """"" if TEXT keeps FRAME, else which piece of the frame it lost."""
    text = _norm(text)
    at = 0
    for i, piece in enumerate(frame):
        if i == 0:
            found = 0 if text.startswith(piece) else -1
        elif i == len(frame) - 1:
            end = len(text) - len(piece)
            found = end if text.endswith(piece) and end >= at else -1
        else:
            found = text.find(piece, at)
        if found < 0:
            return (f"{name} was changed outside its TODO region (the skeleton's "
                    f"`{_departs(piece, text, i == len(frame) - 1)[:60]}`): "
                    "only the region is yours")
        at = found + len(piece)
    return ""


def _departs(piece: str, text: str, from_end: bool) -> str:
    """The first line of PIECE (the last, FROM_END) that TEXT does not have there."""
    want, got = piece.split("\n"), text.split("\n")
    if from_end:
        want, got = want[::-1], got[::-1]
    for w, g in zip(want, got):
        if w != g:
            return w.strip() or "(a blank line)"
    return want[min(len(got), len(want) - 1)].strip() if want else ""
