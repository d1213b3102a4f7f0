"""A lab submission's answers file (answers.toml): read it, check its
form, score it answer by answer.

A file that is not valid TOML is reported by file and line and costs the
answers' points only: the lab's other checks are graded all the same.
Two kinds of question: a prediction (a whole number, right within a
tolerance of the measured value) and a choice among offered words.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


@dataclass
class Answers:
    """What a submission answered; ERROR says why the file could not be read."""
    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def read(path: Path) -> Answers:
    """PATH's answers, or an Answers with the error "PATH:LINE: ..." if it is not TOML."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        return Answers(path, error=f"{path}: cannot be read: {e}")
    try:
        return Answers(path, tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _AT_LINE.search(msg)
        where = f"{path}:{m[1]}:{m[2]}" if m else str(path)
        return Answers(path, error=f"{where}: not valid TOML: {_AT_LINE.sub('', msg)} "
                                   "(only the answers' points are lost)")


def whole_number(value: Any) -> int | None:
    """VALUE if it is a whole number (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def word(value: Any) -> str:
    """A choice as compared: a string, trimmed, in lower case ("" otherwise)."""
    return value.strip().lower() if isinstance(value, str) else ""


def form_problems(a: Answers, numbers: list[str] | None = None,
                  choices: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """What is wrong with the form of A (not whether it is right): the file
    unreadable, a prediction missing or not a whole number, a choice not
    one of the words offered.  A student may see these."""
    if a.error:
        return [a.error]
    out = []
    for k in numbers or []:
        if k not in a.values:
            out.append(f"{k}: missing")
        elif whole_number(a.values[k]) is None:
            out.append(f"{k}: not a whole number")
    for k, offered in (choices or {}).items():
        if k not in a.values:
            out.append(f"{k}: missing")
        elif word(a.values[k]) not in offered:
            out.append(f"{k}: not one of {', '.join(offered)}")
    return out


def right_choices(a: Answers, key: dict[str, str]) -> list[str]:
    """The questions of KEY (question: right word) that A answers right."""
    return [k for k, v in key.items() if not a.error and word(a.values.get(k)) == v]


def prediction_right(a: Answers, name: str, measured: int | None, tolerance: int) -> bool:
    got = None if a.error else whole_number(a.values.get(name))
    return measured is not None and got is not None and abs(got - measured) <= tolerance


def share(points: int, right: int, of: int) -> int:
    """Partial credit: POINTS for OF answers, RIGHT of them right (rounded down)."""
    return points * right // of if of else 0
