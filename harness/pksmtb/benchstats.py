"""The benches' statistics: their runs paired by repeat, a figure's
interval, and its target judged on that interval (stats.py does the
statistics; this module only feeds it a bench's figures.json), and the
one layout of the benches' tables (format_table; flakes.py's table too).

A bench (bench_engine.py, bench_swap.py) boots its configurations one
after the other within each repeat (repeats outermost), so the runs of one
repeat share the host's load: two configurations are compared pair by
pair, by repeat.  Each run's figures record their 'repeat'; a
figures.json from before they did is paired by position in its lists,
which is the repeat as long as every repeat appended one run per
configuration (a bench stops at the first failed run, so the lists are
the repeats done, in order), and the output says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Sequence

from . import stats

Pick = Callable[[dict[str, Any]], Any]
BY_REPEAT, BY_POSITION = "repeat", "position"


def by_repeat(runs: list[dict[str, Any]], pick: Pick) -> tuple[dict[int, float], str]:
    """repeat -> the picked value, for the runs that have one (PICK raising
    KeyError or TypeError, or giving None, is no value); and how the
    repeat was known (BY_REPEAT, or BY_POSITION for older files)."""
    keyed = bool(runs) and all("repeat" in d for d in runs)
    out: dict[int, float] = {}
    for i, d in enumerate(runs):
        try:
            x = pick(d)
        except (KeyError, TypeError):
            x = None
        if x is not None:
            out[int(d["repeat"]) if keyed else i] = float(x)
    return out, BY_REPEAT if keyed else BY_POSITION


def groups(raw: Any, known: set[str]) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    """figures.json's raw by vCPU count ('vcpus=N' -> figure group ->
    configuration -> runs); a file from before --vcpus has the groups at
    the top: one count, not recorded.  ValueError for anything else, or
    for a file with none of the KNOWN groups (another bench's)."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("no 'raw' figures")
    if not all(k.startswith("vcpus=") for k in raw):
        raw = {"vcpus not recorded": raw}
    for label, g in raw.items():
        if not isinstance(g, dict) or not all(
                isinstance(cfgs, dict) and all(isinstance(r, list) and
                                               all(isinstance(d, dict) for d in r)
                                               for r in cfgs.values())
                for cfgs in g.values()):
            raise ValueError(f"{label}: not figure group -> configuration -> runs")
        if not set(g) & known:
            raise ValueError(f"{label}: none of the figure groups {', '.join(sorted(known))}")
    return raw


def paired(a: dict[int, float], b: dict[int, float]) -> stats.PairedRatio:
    """a / b over the repeats both have (stats.paired_ratio)."""
    _, x, y = stats.pairs_by_key(a, b)
    return stats.paired_ratio(x, y)


@dataclass(frozen=True)
class Judged:
    """A figure's value with the interval its target is judged on."""

    value: float | None
    lo: float | None
    hi: float | None
    how: str                        # e.g. "paired by repeat, 3 pairs"
    verdict: stats.Verdict | None   # None: the figure has no target
    reason: str | None = None       # why there is no interval

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "how": self.how,
                "verdict": self.verdict, "reason": self.reason, "level": stats.LEVEL}

    def text(self, fmt: str = "{:.3f}") -> str:
        """'1.157 [1.050-1.270]', the value alone, or '-'."""
        if self.value is None:
            return "-"
        v = fmt.format(self.value)
        if self.lo is None or self.hi is None:
            return v
        return f"{v} [{fmt.format(self.lo)}-{fmt.format(self.hi)}]"


def judge_ratio(pr: stats.PairedRatio, target: stats.Target | None, how: str) -> Judged:
    """A paired ratio, judged on its t interval."""
    return Judged(pr.ratio, pr.lo, pr.hi, f"{how}, {pr.n} pair(s)",
                  target.verdict(pr.lo, pr.hi) if target else None, pr.reason)


def judge_mean(values: list[float], target: stats.Target | None) -> Judged:
    """One configuration's own value: the mean of its runs with its t
    interval (not a comparison: nothing is paired)."""
    mi = stats.mean_interval(values)
    return Judged(mi.mean, mi.lo, mi.hi, f"one sample, mean of {mi.n}",
                  target.verdict(mi.lo, mi.hi) if target else None, mi.reason)


def pairing_note(how: set[str]) -> str:
    """A line for the table: how the runs were paired."""
    if how == {BY_REPEAT} or not how:
        return "runs paired by repeat (the boots of one repeat ran one after the other)"
    return ("runs paired by their position in figures.json (a file from before each run "
            "recorded its repeat: the position is the repeat when no repeat was skipped)")


def verdict_text(v: stats.Verdict | None) -> str:
    return "" if v is None else v


def format_table(rows: Sequence[Sequence[str]], left: Collection[int] = (0,)) -> list[str]:
    """ROWS (the first the header) as aligned lines: each column as wide as
    its widest cell, two spaces apart, the columns numbered in LEFT flush
    left and the rest flush right, a rule of dashes under the header, no
    trailing blanks.  The lines without newlines, for the caller's notes."""
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w[j]) if j in left else c.rjust(w[j])
                               for j, c in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * x for x in w))
    return lines
