"""A lab submission's answers file (answers.toml): read it, check its
form, score it answer by answer.

A file that is not valid TOML is reported by file and line and costs the
answers' points only: the lab's other checks are graded all the same.
Two kinds of question: a prediction (a formula in the sizes of the
scenario graded, or a whole number: right within a tolerance of the
measured value) and a choice among offered words.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

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
    except (ValueError, RecursionError, MemoryError) as e:
        # TOMLDecodeError; an integer too long to convert; nesting too deep
        if not isinstance(e, tomllib.TOMLDecodeError):
            why = str(e) if isinstance(e, ValueError) else "nested too deeply"
            return Answers(path, error=f"{path}: not valid TOML: {why} "
                                       "(only the answers' points are lost)")
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


# ---- predictions: formulas in the drawn sizes -------------------------------

class FormulaError(ValueError):
    """Why a prediction is not a formula this grader evaluates."""


FORMULA_MAX = 400           # characters: a prediction is a line, not a program
VALUE_MAX = 10 ** 15        # no count is larger: beyond, a formula is refused
_FORMULA_CHARS = re.compile(r"[0-9A-Za-z_ \t+\-*/%(),]*")
_BINARY: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: lambda x, y: Fraction(x // y),
    ast.Mod: operator.mod}
_CALLS: dict[str, Callable[..., Fraction]] = {
    "ceil": lambda x: Fraction(math.ceil(x)), "floor": lambda x: Fraction(math.floor(x)),
    "min": min, "max": max}


def _bounded(v: Fraction) -> Fraction:
    """V, if neither it nor its denominator is beyond VALUE_MAX."""
    if abs(v) > VALUE_MAX or v.denominator > VALUE_MAX:
        raise FormulaError(f"a value beyond {VALUE_MAX:.0e} on the way: no count is that large")
    return v


def _eval(node: ast.AST, names: dict[str, int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body, names)
    if isinstance(node, ast.Constant) and whole_number(node.value) is not None:
        return _bounded(Fraction(node.value))
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise FormulaError(f"unknown name {node.id!r} (the names are "
                               f"{', '.join(sorted(names))})")
        return Fraction(names[node.id])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand, names)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        x, y = _eval(node.left, names), _eval(node.right, names)
        if y == 0 and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            raise FormulaError("division by zero")
        return _bounded(_BINARY[type(node.op)](x, y))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _CALLS and node.args and not node.keywords
            and (len(node.args) == 1) == (node.func.id in ("ceil", "floor"))):
        return _CALLS[node.func.id](*(_eval(x, names) for x in node.args))
    raise FormulaError(f"{ast.unparse(node)!r} is not allowed (whole numbers, the names, "
                       "+ - * / // %, parentheses, ceil() floor() min() max())")


def evaluate(value: Any, names: dict[str, int]) -> Fraction:
    """A prediction's value with NAMES (name: whole number): a whole
    number, or a formula in a string ("a_pages * (a_procs - 1)") of whole
    numbers, NAMES, + - * / // % and ceil/floor/min/max, / exact.
    FormulaError says what is wrong with it."""
    if whole_number(value) is not None:
        return _bounded(Fraction(value))
    if not isinstance(value, str):
        raise FormulaError("neither a whole number nor a formula in quotes")
    if len(value) > FORMULA_MAX:
        raise FormulaError(f"longer than {FORMULA_MAX} characters")
    if not _FORMULA_CHARS.fullmatch(value):
        bad = sorted({c for c in value if not _FORMULA_CHARS.fullmatch(c)})
        raise FormulaError(f"characters no formula has: {''.join(bad)!r}")
    try:
        tree = ast.parse(value.strip(), mode="eval")
        return _eval(tree, names)
    except SyntaxError as e:
        raise FormulaError(f"not a formula: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise FormulaError("nested too deeply") from None


def form_problems(a: Answers, numbers: list[str] | None = None,
                  choices: dict[str, tuple[str, ...]] | None = None,
                  names: dict[str, int] | None = None) -> list[str]:
    """What is wrong with the form of A (not whether it is right): the file
    unreadable, a prediction missing or not a formula in NAMES (evaluated
    with NAMES' values: the handout's sizes), a choice not one of the
    words offered.  A student may see these."""
    if a.error:
        return [a.error]
    out = []
    for k in numbers or []:
        if k not in a.values:
            out.append(f"{k}: missing")
            continue
        try:
            evaluate(a.values[k], names or {})
        except FormulaError as e:
            out.append(f"{k}: {e}")
    for k, offered in (choices or {}).items():
        if k not in a.values:
            out.append(f"{k}: missing")
        elif word(a.values[k]) not in offered:
            out.append(f"{k}: not one of {', '.join(offered)}")
    return out


def right_choices(a: Answers, key: dict[str, str]) -> list[str]:
    """The questions of KEY (question: right word) that A answers right."""
    return [k for k, v in key.items() if not a.error and word(a.values.get(k)) == v]


def predicted(a: Answers, name: str, names: dict[str, int]) -> Fraction | None:
    """A's prediction NAME evaluated with NAMES (the sizes drawn), or None."""
    if a.error or name not in a.values:
        return None
    try:
        return evaluate(a.values[name], names)
    except FormulaError:
        return None


def prediction_right(a: Answers, name: str, measured: int | None, tolerance: int,
                     names: dict[str, int]) -> bool:
    got = predicted(a, name, names)
    return measured is not None and got is not None and abs(got - measured) <= tolerance


def share(points: int, right: int, of: int) -> int:
    """Partial credit: POINTS for OF answers, RIGHT of them right (rounded down)."""
    return points * right // of if of else 0
