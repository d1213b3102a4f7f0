"""Statistics of repeated runs: mean and spread, change against a baseline,
and whether the change is significant.

Two tests are reported side by side, as LKP's and mmtests' compare tables
do: Welch's t-test (unequal variances; the p-value from scipy's Student t
distribution) and LKP's rule of thumb that a change is real when the
ranges [min, max] of the two samples do not overlap.  Neither is computed
for fewer than two values on a side.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats as _scipy_stats

ALPHA = 0.05


@dataclass(frozen=True)
class Sample:
    """Mean, sample standard deviation (n - 1) and range of some values."""

    n: int
    mean: float
    stddev: float
    lo: float
    hi: float

    @classmethod
    def of(cls, values: list[float]) -> Sample | None:
        if not values:
            return None
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(len(values), statistics.fmean(values), sd, min(values), max(values))

    @property
    def rel_stddev(self) -> float | None:
        """stddev / |mean| (LKP's %stddev as a fraction); None for mean 0."""
        return self.stddev / abs(self.mean) if self.mean else None


@dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p: float


def welch(a: list[float], b: list[float]) -> Welch | None:
    """Welch's two-sided t-test of mean(a) == mean(b).

    t = (ma - mb) / sqrt(va/na + vb/nb), with the Welch-Satterthwaite
    degrees of freedom; p from the t distribution.  None when a side has
    fewer than two values, or when both variances are zero (no t exists:
    the ranges say it all then).
    """
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    va, vb = statistics.variance(a), statistics.variance(b)
    sa, sb = va / na, vb / nb
    if sa + sb == 0:
        return None
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa ** 2 / (na - 1) + sb ** 2 / (nb - 1))
    p = float(2 * _scipy_stats.t.sf(abs(t), df))
    return Welch(t, df, p)


def ranges_disjoint(a: Sample, b: Sample) -> bool:
    """LKP's rule: the change is real if the ranges do not overlap."""
    return a.hi < b.lo or b.hi < a.lo


@dataclass(frozen=True)
class Comparison:
    """A cell's sample of one figure against its baseline's."""

    cell: Sample
    base: Sample
    change_pct: float | None      # (cell - base) / |base| * 100
    ratio: float | None           # cell.mean / base.mean
    ratio_lo: float | None        # the ratio's spread: cell.lo / base.hi ...
    ratio_hi: float | None        # ... cell.hi / base.lo (both positive only)
    p: float | None               # Welch's p-value
    welch_significant: bool | None
    ranges_disjoint: bool | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare(cell: list[float], base: list[float], alpha: float = ALPHA) -> Comparison | None:
    """cell against base; None if either has no values."""
    c, b = Sample.of(cell), Sample.of(base)
    if c is None or b is None:
        return None
    change = (c.mean - b.mean) / abs(b.mean) * 100 if b.mean else None
    ratio = c.mean / b.mean if b.mean else None
    rlo = rhi = None
    if c.lo > 0 and b.lo > 0:
        rlo, rhi = c.lo / b.hi, c.hi / b.lo
    w = welch(cell, base)
    enough = c.n >= 2 and b.n >= 2
    if w is not None:
        sig: bool | None = w.p < alpha
    elif enough:
        # both constant: a difference is certain, equality is no change
        sig = c.mean != b.mean
    else:
        sig = None
    return Comparison(c, b, change, ratio, rlo, rhi, w.p if w else None, sig,
                      ranges_disjoint(c, b) if enough else None)
