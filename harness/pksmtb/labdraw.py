"""The sizes a prediction lab's scenario is graded with, drawn at grading.

A prediction lab (2, 5) asks for each counter as a formula in the sizes of
its scenario's workloads, named in its lab.toml's [draw] table:

    [draw]
    a_procs = { at = "workload.1.procs", values = [2, 4, 5] }
    a_pages = { at = "workload.1.mib", values = [2, 3], scale = 256 }
    max_sharing = { at = "knobs.ksm.max_page_sharing", values = [32, 64] }

AT is where the size goes in the lab's scenario (the Nth [[workload]]'s
option, counted from 1, or a knob), VALUES what the grader may put there,
SCALE what one unit there is in the name's unit (pages in a MiB).  The
handout's sizes are the scenario's own; every value drawn differs from
the handout's, so a counter measured on the handout's run is no answer.
A grading draws DRAWS sets of sizes, each size different in each, and a
prediction is right only if it is right with every set: a constant is
right with both only where a counter happens to come out equal in both
(lab 2's pages_sharing can, in 1 grading of 24), and a formula that
confuses two sizes is wrong with at least one set wherever they differ.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config

DRAWS = 2                   # sets of sizes a grading boots, each size different in each
_AT = re.compile(r"^(?:workload\.([1-9]\d*)\.([a-z_]+)|knobs\.(ksm|pksm)\.([a-z_]+))$")


class DrawError(ValueError):
    """A [draw] table that cannot be used (the lab.toml and the name said)."""


@dataclass(frozen=True)
class Size:
    """One drawn size: its NAME in the formulas, where it goes in the
    scenario (AT), the VALUES there it may take, and the SCALE from those
    to the name's unit."""
    name: str
    at: str
    values: tuple[int, ...]
    scale: int = 1


def parse(raw: Any, where: Path) -> list[Size]:
    """The sizes of a lab.toml's [draw] table RAW (None: the lab draws
    nothing); DrawError naming WHERE and the entry otherwise."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise DrawError(f"{where}: [draw] must be a table of sizes")
    out: list[Size] = []
    for name, spec in raw.items():
        bad = f"{where}: draw.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or not isinstance(spec, dict):
            raise DrawError(f"{bad}: a lower-case name and a table {{ at, values, scale }}")
        if set(spec) - {"at", "values", "scale"}:
            raise DrawError(f"{bad}: unknown keys {sorted(set(spec) - {'at', 'values', 'scale'})}")
        at, values, scale = spec.get("at"), spec.get("values"), spec.get("scale", 1)
        if not isinstance(at, str) or not _AT.match(at):
            raise DrawError(f"{bad}: at must be 'workload.N.OPTION' or 'knobs.ksm|pksm.NAME'")
        if (not isinstance(values, list) or len(values) < DRAWS
                or not all(type(v) is int and v > 0 for v in values)
                or len(set(values)) != len(values)):
            raise DrawError(f"{bad}: values must be {DRAWS} or more distinct positive "
                            "whole numbers")
        if type(scale) is not int or scale < 1:
            raise DrawError(f"{bad}: scale must be a positive whole number")
        if any(s.at == at for s in out):
            raise DrawError(f"{bad}: at {at} is another size's too")
        out.append(Size(name, at, tuple(values), scale))
    return out


def _slot(sc: config.Scenario, at: str) -> tuple[dict[str, Any], str]:
    """The dictionary and key AT names in SC (DrawError if it is not there)."""
    m = _AT.match(at)
    assert m
    if m[1]:
        i = int(m[1]) - 1
        if i >= len(sc.workloads) or sc.workloads[i].shell is not None:
            raise DrawError(f"{sc.path}: {at}: no such dupalloc-style workload")
        return sc.workloads[i].options, m[2]
    return sc.knobs.setdefault(m[3], {}), m[4]


def handout(sizes: list[Size], sc: config.Scenario) -> dict[str, int]:
    """The sizes of SC as written (the handout's): name -> value x scale.
    DrawError if one is missing, not a whole number, or among its values."""
    out = {}
    for s in sizes:
        d, key = _slot(sc, s.at)
        try:
            v = int(str(d[key]))
        except (KeyError, ValueError):
            raise DrawError(f"{sc.path}: {s.at} ({s.name}): no whole number there") from None
        if v in s.values:
            raise DrawError(f"{sc.path}: {s.at} ({s.name}) = {v} is one of the values "
                            "drawn: the handout's run would give the answers")
        out[s.name] = v * s.scale
    return out


def draws(sizes: list[Size], n: int = DRAWS) -> list[dict[str, int]]:
    """N sets of sizes (name -> value x scale), at random, each size's
    value in each set one of its VALUES that no earlier set has."""
    out: list[dict[str, int]] = []
    for _ in range(n):
        d = {}
        for s in sizes:
            left = [v for v in s.values if all(v * s.scale != e[s.name] for e in out)]
            d[s.name] = left[secrets.randbelow(len(left))] * s.scale
        out.append(d)
    return out


def parse_text(sizes: list[Size], given: str) -> list[dict[str, int]]:
    """Sets of sizes as text() writes them (a grade's record), to grade
    with again; DrawError unless there are DRAWS sets, each naming every
    size once with one of its values, and each size's value differs
    between the sets."""
    if len(given) > 4096:
        raise DrawError("sizes: longer than a grade's record")
    out: list[dict[str, int]] = []
    for part in given.split(";"):
        d: dict[str, int] = {}
        for word in part.split():
            name, eq, value = word.partition("=")
            size = next((s for s in sizes if s.name == name), None)
            if (not eq or size is None or name in d or not value.isascii()
                    or not value.isdigit() or len(value) > 12):
                raise DrawError(f"sizes {given!r}: {word!r} is not NAME=VALUE of a size "
                                f"({', '.join(s.name for s in sizes)}) given once")
            v = int(value)
            if v % size.scale or v // size.scale not in size.values:
                raise DrawError(f"sizes {given!r}: {name}={v} is not one the lab draws "
                                f"({', '.join(str(x * size.scale) for x in size.values)})")
            d[name] = v
        if set(d) != {s.name for s in sizes}:
            raise DrawError(f"sizes {given!r}: each set names every size "
                            f"({', '.join(s.name for s in sizes)})")
        if any(d[k] == e[k] for e in out for k in d):
            raise DrawError(f"sizes {given!r}: a size has one value in two sets "
                            "(a grading's sets differ in every size)")
        out.append(d)
    if len(out) != DRAWS:
        raise DrawError(f"sizes {given!r}: {len(out)} set(s), not the {DRAWS} a grading has")
    return out


def apply(sizes: list[Size], sc: config.Scenario, drawn: dict[str, int]) -> config.Scenario:
    """SC with the sizes DRAWN put in (SC itself changed and returned)."""
    for s in sizes:
        d, key = _slot(sc, s.at)
        v = drawn[s.name] // s.scale
        d[key] = str(v) if s.at.startswith("knobs.") else v
    sc.description += " (sizes drawn: " + ", ".join(f"{k}={v}" for k, v in drawn.items()) + ")"
    return sc


def text(sets: list[dict[str, int]]) -> str:
    """SETS as recorded in a grade: "a_procs=4 a_pages=512 ...; a_procs=2 ..."."""
    return "; ".join(" ".join(f"{k}={v}" for k, v in d.items()) for d in sets)
