"""Statistics of repeated runs: mean and spread, change against a baseline,
and whether the change is significant.

Unpaired samples: two tests side by side, as LKP's and mmtests' compare
tables do: Welch's t-test (unequal variances; the p-value from scipy's
Student t distribution) and LKP's rule of thumb that a change is real when
the ranges [min, max] of the two samples do not overlap.  Neither is
computed for fewer than two values on a side.

Paired samples (a cell and its baseline booted in the same repeat, one
after the other or side by side, sharing the host's load): paired_ratio(),
the geometric mean of the per-pair ratios with a t interval on the log
ratios, a bootstrap interval beside it, the p-value of "no change" and the
smallest change the design could detect.  A target on a figure is judged
on an interval, never on a point (Target.verdict).  Across a family of
comparisons, holm() and benjamini_hochberg() adjust the p-values.

Where a figure cannot be computed (too few values, a value <= 0 under a
log, no spread at all) it is None and a reason says why: never a crash,
never an interval made up from nothing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize as _scipy_optimize
from scipy import stats as _scipy_stats

ALPHA = 0.05
LEVEL = 0.95            # the confidence level of every interval
POWER = 0.80            # the power the smallest detectable change is stated at
BOOT_SEED = 20261206    # the bootstrap's seed: the same data give the same interval
BOOT_RESAMPLES = 10_000


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
    se: float = math.nan        # the standard error of mean(a) - mean(b)


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
    return Welch(t, df, p, math.sqrt(sa + sb))


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
    mde_pct: float | None = None  # Welch's smallest detectable change, % of |base mean|

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
    mde = None
    if w is not None and b.mean:
        mde = detectable_shift(w.se, w.df, alpha) / abs(b.mean) * 100
    return Comparison(c, b, change, ratio, rlo, rhi, w.p if w else None, sig,
                      ranges_disjoint(c, b) if enough else None, mde)


# ---- the smallest detectable change ------------------------------------------------

def detectable_shift(se: float, df: float, alpha: float = ALPHA,
                     power: float = POWER) -> float:
    """The smallest true shift a two-sided t-test at level ALPHA detects
    with probability POWER, in the units of SE: se * lam, where lam solves

        P(|T'| > t(1 - alpha/2, df)) = power,  T' ~ noncentral t(df, lam).

    For a paired test SE is sd / sqrt(n) of the differences (df n - 1);
    for Welch's it is sqrt(va/na + vb/nb) with Welch's df.  SE and DF must
    be positive (ValueError): with no spread there is no test to power."""
    if not (se > 0 and math.isfinite(se)) or not (df > 0 and math.isfinite(df)):
        raise ValueError(f"detectable_shift: needs se > 0 and df > 0, got {se!r}, {df!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"detectable_shift: alpha and power in (0, 1), got {alpha}, {power}")
    tc = float(_scipy_stats.t.ppf(1 - alpha / 2, df))

    def short(lam: float) -> float:
        # (scipy's noncentral t warns of a division by zero inside Boost at
        # small df; its values are right: checked against simulation)
        with np.errstate(all="ignore"):
            got = float(_scipy_stats.nct.sf(tc, df, lam) + _scipy_stats.nct.cdf(-tc, df, lam))
        if not math.isfinite(got):
            raise ValueError(f"detectable_shift: no power at df {df}, shift {lam}")
        return got - power

    hi = 1.0
    while short(hi) < 0:
        hi *= 2
        if hi > 1e7:
            raise ValueError(f"detectable_shift: no shift reaches power {power} at df {df}")
    return se * float(_scipy_optimize.brentq(short, 0.0, hi, xtol=1e-10))


# ---- paired ratios -----------------------------------------------------------------

@dataclass(frozen=True)
class PairedRatio:
    """a against b, pair by pair: the geometric mean of a_i / b_i.

    The interval is the t interval of the mean log ratio (n - 1 degrees of
    freedom), exponentiated; the bootstrap interval is the percentile
    interval of the mean log ratio over BOOT_RESAMPLES resamples of the
    pairs (numpy's default generator seeded with boot_seed), a second
    opinion that assumes no normality (with few pairs it is too narrow:
    n = 3 pairs have 10 distinct resamples).  p is the paired t-test's of
    "ratio = 1" (mean log ratio 0).  mde_ratio is the smallest true ratio
    (above 1; its inverse below) the test detects with probability
    `power` at level `alpha`, for this n and this spread of log ratios.

    Fields that cannot be computed are None and `reason` says why: no
    pairs, a value <= 0 (no log), one pair (no spread), all ratios equal
    (no spread: the ratio is exact for these pairs, its uncertainty
    unknown)."""

    n: int                          # pairs
    ratio: float | None             # geometric mean of a_i / b_i
    lo: float | None = None         # t interval at `level`
    hi: float | None = None
    p: float | None = None          # paired t-test of ratio = 1
    df: int | None = None           # n - 1
    log_sd: float | None = None     # sample sd of the log ratios
    boot_lo: float | None = None    # bootstrap percentile interval at `level`
    boot_hi: float | None = None
    mde_ratio: float | None = None  # the smallest detectable ratio > 1 at `power`
    level: float = LEVEL
    alpha: float = ALPHA
    power: float = POWER
    boot_seed: int = BOOT_SEED
    boot_resamples: int = BOOT_RESAMPLES
    reason: str | None = None       # why some of the above are None

    @property
    def significant(self) -> bool | None:
        """p < alpha; None without a p."""
        return None if self.p is None else self.p < self.alpha

    @property
    def mde_pct(self) -> float | None:
        """The smallest detectable change in percent: (mde_ratio - 1) x 100."""
        return None if self.mde_ratio is None else (self.mde_ratio - 1) * 100

    def brief(self, digits: int = 3) -> str:
        """'1.190 [1.050-1.330]', the ratio alone, or '-'."""
        if self.ratio is None:
            return "-"
        if self.lo is None or self.hi is None:
            return f"{self.ratio:.{digits}f}"
        return f"{self.ratio:.{digits}f} [{self.lo:.{digits}f}-{self.hi:.{digits}f}]"

    def inverse(self) -> PairedRatio:
        """b against a: every ratio and bound inverted (the log ratios'
        signs flip; p, spread and the detectable change stay)."""
        def inv(x: float | None) -> float | None:
            return None if x is None else 1 / x
        return PairedRatio(self.n, inv(self.ratio), inv(self.hi), inv(self.lo), self.p,
                           self.df, self.log_sd, inv(self.boot_hi), inv(self.boot_lo),
                           self.mde_ratio, self.level, self.alpha, self.power,
                           self.boot_seed, self.boot_resamples, self.reason)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"significant": self.significant, "mde_pct": self.mde_pct}


def paired_ratio(a: list[float], b: list[float], level: float = LEVEL, alpha: float = ALPHA,
                 power: float = POWER, seed: int = BOOT_SEED,
                 resamples: int = BOOT_RESAMPLES) -> PairedRatio:
    """a_i / b_i over the pairs (a_i, b_i): see PairedRatio.  A and B must
    be the same length (ValueError): pair them before calling."""
    if len(a) != len(b):
        raise ValueError(f"paired_ratio: {len(a)} values against {len(b)}: not pairs")
    n = len(a)
    kw: dict[str, Any] = {"level": level, "alpha": alpha, "power": power, "boot_seed": seed,
                          "boot_resamples": resamples}
    if n == 0:
        return PairedRatio(0, None, reason="no pairs", **kw)
    bad = [(x, y) for x, y in zip(a, b)
           if not (x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y))]
    if bad:
        return PairedRatio(n, None, **kw,
                           reason=f"a value <= 0 (or not finite) in {len(bad)} of {n} pairs: "
                                  "no log ratio")
    logs = [math.log(x) - math.log(y) for x, y in zip(a, b)]
    mean = statistics.fmean(logs)
    ratio = math.exp(mean)
    if n == 1:
        return PairedRatio(1, ratio, reason="one pair: no spread, no interval", **kw)
    sd = statistics.stdev(logs)
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return PairedRatio(n, ratio, **kw,
                           reason=f"all {n} ratios equal ({ratio:.6g}): no spread, no interval")
    df = n - 1
    se = sd / math.sqrt(n)
    tq = float(_scipy_stats.t.ppf((1 + level) / 2, df))
    p = float(2 * _scipy_stats.t.sf(abs(mean / se), df))
    rng = np.random.default_rng(seed)
    arr = np.asarray(logs, dtype=float)
    means = arr[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    blo, bhi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return PairedRatio(n, ratio, math.exp(mean - tq * se), math.exp(mean + tq * se), p, df, sd,
                       math.exp(float(blo)), math.exp(float(bhi)),
                       math.exp(detectable_shift(se, df, alpha, power)), **kw)


def pairs_by_key(a: dict[Any, float], b: dict[Any, float]) -> tuple[list[Any], list[float],
                                                                    list[float]]:
    """The keys (repeat indexes) both have, in order, and their values."""
    keys = sorted(set(a) & set(b))
    return keys, [a[k] for k in keys], [b[k] for k in keys]


# ---- one sample's interval ---------------------------------------------------------

@dataclass(frozen=True)
class MeanInterval:
    """The mean of some values with its t interval (n - 1 df) at `level`;
    lo and hi None, with a reason, for fewer than two values or no spread."""

    n: int
    mean: float | None
    lo: float | None
    hi: float | None
    level: float = LEVEL
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mean_interval(values: list[float], level: float = LEVEL) -> MeanInterval:
    n = len(values)
    if n == 0:
        return MeanInterval(0, None, None, None, level, "no values")
    mean = statistics.fmean(values)
    if n == 1:
        return MeanInterval(1, mean, None, None, level, "one value: no spread, no interval")
    sd = statistics.stdev(values)
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return MeanInterval(n, mean, None, None, level,
                            f"all {n} values equal ({mean:.6g}): no spread, no interval")
    half = float(_scipy_stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return MeanInterval(n, mean, mean - half, mean + half, level)


def proportion_interval(k: int, n: int, level: float = LEVEL) -> MeanInterval:
    """k successes of n trials: the proportion with its Wilson score
    interval (good near 0 and 1, unlike the normal approximation)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"proportion_interval: {k} of {n}")
    z = float(_scipy_stats.norm.ppf((1 + level) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return MeanInterval(n, p, max(0.0, centre - half), min(1.0, centre + half), level)


# ---- targets -----------------------------------------------------------------------

Verdict = Literal["met", "not met", "not shown"]
MET: Verdict = "met"
NOT_MET: Verdict = "not met"
NOT_SHOWN: Verdict = "not shown"


@dataclass(frozen=True)
class Target:
    """A target on a figure: value <= bound (at_most) or value >= bound.

    Judged on an interval: "met" only when the whole interval lies inside
    the target (ratio <= 1.05: the upper bound <= 1.05), "not met" when
    the whole interval lies outside it (the lower bound > 1.05), "not
    shown" when the interval straddles the bound or there is no interval.
    The bound itself counts as inside."""

    bound: float
    at_most: bool = True

    def text(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.bound:g}"

    def verdict(self, lo: float | None, hi: float | None) -> Verdict:
        if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
            return NOT_SHOWN
        if lo > hi:
            raise ValueError(f"Target.verdict: interval [{lo}, {hi}] upside down")
        if self.at_most:
            return MET if hi <= self.bound else NOT_MET if lo > self.bound else NOT_SHOWN
        return MET if lo >= self.bound else NOT_MET if hi < self.bound else NOT_SHOWN


# ---- a family of comparisons -------------------------------------------------------

@dataclass(frozen=True)
class Adjusted:
    """Adjusted p-values in the order given, and which are rejected
    (adjusted p <= alpha)."""

    p: list[float]
    reject: list[bool]


def _check_ps(ps: list[float], who: str) -> None:
    for p in ps:
        if not (isinstance(p, (int, float)) and 0 <= p <= 1):
            raise ValueError(f"{who}: a p-value must lie in [0, 1], got {p!r}")


def holm(ps: list[float], alpha: float = ALPHA) -> Adjusted:
    """Holm's step-down adjustment (family-wise error rate): with the m
    p-values sorted, p_(1) <= ... <= p_(m), the adjusted
    p_(i) = max over j <= i of min(1, (m - j + 1) p_(j))."""
    _check_ps(ps, "holm")
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adj = [0.0] * m
    run = 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * ps[i]))
        adj[i] = run
    return Adjusted(adj, [x <= alpha for x in adj])


def benjamini_hochberg(ps: list[float], alpha: float = ALPHA) -> Adjusted:
    """Benjamini and Hochberg's step-up adjustment (false discovery rate):
    with the m p-values sorted, the adjusted p_(i) = min over j >= i of
    min(1, m p_(j) / j)."""
    _check_ps(ps, "benjamini_hochberg")
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adj = [0.0] * m
    run = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        run = min(run, m * ps[i] / (rank + 1))
        adj[i] = run
    return Adjusted(adj, [x <= alpha for x in adj])
