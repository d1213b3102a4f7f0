"""The sweep's statistics on known samples (no kernel needed)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from pksmtb import stats

A = [1.0, 2.0, 3.0, 4.0, 5.0]
B = [2.0, 4.0, 6.0, 8.0, 10.0]


def test_sample_mean_stddev_range() -> None:
    s = stats.Sample.of(A)
    assert s is not None
    # mean 3, sample variance 10/4 = 2.5
    assert (s.n, s.mean, s.lo, s.hi) == (5, 3.0, 1.0, 5.0)
    assert s.stddev == pytest.approx(math.sqrt(2.5))
    assert s.rel_stddev == pytest.approx(math.sqrt(2.5) / 3)
    assert stats.Sample.of([]) is None
    assert stats.Sample.of([7.0]) == stats.Sample(1, 7.0, 0.0, 7.0, 7.0)


def test_welch_by_hand() -> None:
    # va = 2.5, vb = 10; se^2 = 2.5/5 + 10/5 = 2.5; t = (3 - 6) / sqrt(2.5)
    # df = 2.5^2 / (0.5^2/4 + 2^2/4) = 6.25 / 1.0625 = 5.882...
    w = stats.welch(A, B)
    assert w is not None
    assert w.t == pytest.approx(-1.8973666, abs=1e-6)
    assert w.df == pytest.approx(5.8823529, abs=1e-6)
    # two-sided p: t(0.05, ~6 df) = 1.94 > |t|, so just above 0.10
    assert 0.10 < w.p < 0.11
    ref = scipy_stats.ttest_ind(A, B, equal_var=False)
    assert w.t == pytest.approx(ref.statistic) and w.p == pytest.approx(ref.pvalue)


def test_welch_undefined() -> None:
    assert stats.welch([1.0], B) is None            # one value
    assert stats.welch([2.0, 2.0], [2.0, 2.0]) is None  # no variance at all


def test_compare_change_ratio_and_calls() -> None:
    c = stats.compare(B, A)
    assert c is not None
    assert c.change_pct == pytest.approx(100.0)
    assert c.ratio == pytest.approx(2.0)
    assert c.ratio_lo == pytest.approx(2 / 5) and c.ratio_hi == pytest.approx(10.0)
    assert c.welch_significant is False and c.ranges_disjoint is False
    far = stats.compare([10.0, 10.5, 11.0], [1.0, 1.2, 0.9])
    assert far is not None and far.welch_significant and far.ranges_disjoint
    assert far.p is not None and far.p < 0.001
    # constant samples: a difference is certain, equality is none
    const = stats.compare([3.0, 3.0], [2.0, 2.0])
    assert const is not None and const.p is None and const.welch_significant
    same = stats.compare([3.0, 3.0], [3.0, 3.0])
    assert same is not None and same.welch_significant is False and not same.ranges_disjoint
    # one run a side: no call either way
    one = stats.compare([3.0], [2.0])
    assert one is not None and one.welch_significant is None and one.ranges_disjoint is None
    assert stats.compare([], A) is None


def test_lkp_ranges_rule() -> None:
    a, b = stats.Sample.of([1.0, 2.0]), stats.Sample.of([2.5, 3.0])
    assert a is not None and b is not None
    assert stats.ranges_disjoint(a, b) and stats.ranges_disjoint(b, a)
    c = stats.Sample.of([1.5, 2.6])
    assert c is not None and not stats.ranges_disjoint(c, b)
