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


# ---- paired ratios ------------------------------------------------------------------

# log ratios 0.1, 0.2, 0.3: mean 0.2, sd 0.1, se 0.1 / sqrt(3), 2 df
BASE = [100.0, 50.0, 20.0]
PAIRED = [b * math.exp(d) for b, d in zip(BASE, (0.1, 0.2, 0.3))]


def test_paired_ratio_by_hand() -> None:
    r = stats.paired_ratio(PAIRED, BASE)
    assert r.reason is None and r.n == 3 and r.df == 2
    assert r.ratio == pytest.approx(math.exp(0.2))
    assert r.log_sd == pytest.approx(0.1)
    # t(0.975, 2 df) = 0.95 / sqrt(2 x 0.975 x 0.025) = 4.302653 (closed form at 2 df)
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * 0.1 / math.sqrt(3)
    assert half == pytest.approx(0.248414, abs=1e-6)
    assert r.lo == pytest.approx(math.exp(0.2 - half)) and r.lo == pytest.approx(0.952739, abs=1e-6)
    assert r.hi == pytest.approx(math.exp(0.2 + half)) and r.hi == pytest.approx(1.565826, abs=1e-6)
    # t = 0.2 / se = 2 sqrt(3); at 2 df the two-sided p is 1 - |t| / sqrt(t^2 + 2)
    t = 2 * math.sqrt(3)
    assert r.p == pytest.approx(1 - t / math.sqrt(t * t + 2)) and r.p == pytest.approx(0.074180,
                                                                                      abs=1e-6)
    assert r.significant is False


def test_paired_ratio_against_scipy() -> None:
    a = [105.0, 98.0, 120.0, 111.0, 93.0, 101.0]
    b = [100.0, 97.0, 104.0, 100.0, 95.0, 99.0]
    r = stats.paired_ratio(a, b)
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    ref = scipy_stats.ttest_rel(la, lb)
    assert r.p == pytest.approx(ref.pvalue) and r.df == 5
    d = [x - y for x, y in zip(la, lb)]
    lo, hi = scipy_stats.t.interval(0.95, 5, loc=sum(d) / 6, scale=scipy_stats.sem(d))
    assert r.lo == pytest.approx(math.exp(lo)) and r.hi == pytest.approx(math.exp(hi))
    assert r.ratio == pytest.approx(scipy_stats.gmean([x / y for x, y in zip(a, b)]))
    # b against a: the same test, every bound inverted
    inv = stats.paired_ratio(b, a)
    assert inv.p == pytest.approx(r.p) and inv.lo == pytest.approx(1 / r.hi)  # type: ignore
    assert r.inverse().lo == pytest.approx(inv.lo) and r.inverse().hi == pytest.approx(inv.hi)


def test_paired_beats_unpaired_on_shared_noise() -> None:
    # the host's load moves both sides of each pair alike: unpaired, the
    # 5 % change drowns in it; paired, it stands out
    load = [1.0, 1.6, 0.7, 1.3, 0.9]
    base = [100 * x for x in load]
    cell = [105 * x * (1 + e) for x, e in zip(load, (0.01, -0.01, 0.0, 0.005, -0.005))]
    w = stats.welch(cell, base)
    r = stats.paired_ratio(cell, base)
    assert w is not None and w.p > 0.5
    assert r.p is not None and r.p < 0.001 and r.lo is not None and 1.03 < r.lo < 1.05


def test_bootstrap_is_deterministic_and_recorded() -> None:
    r1 = stats.paired_ratio(PAIRED, BASE)
    r2 = stats.paired_ratio(PAIRED, BASE)
    assert (r1.boot_lo, r1.boot_hi) == (r2.boot_lo, r2.boot_hi)
    assert r1.boot_seed == stats.BOOT_SEED and r1.boot_resamples == stats.BOOT_RESAMPLES
    assert r1.to_json()["boot_seed"] == stats.BOOT_SEED
    # percentile bounds lie within the data's ratios: 3 pairs, 10 resamples
    assert r1.boot_lo is not None and r1.boot_hi is not None and r1.ratio is not None
    assert math.exp(0.1) - 1e-12 <= r1.boot_lo < r1.ratio < r1.boot_hi <= math.exp(0.3) + 1e-12
    other = stats.paired_ratio(PAIRED, BASE, seed=1)
    assert other.boot_seed == 1


def test_paired_edge_cases() -> None:
    none = stats.paired_ratio([], [])
    assert none.ratio is None and none.reason == "no pairs"
    one = stats.paired_ratio([2.0], [1.0])
    assert one.ratio == 2.0 and one.lo is None and one.p is None and "one pair" in str(one.reason)
    for bad in ([0.0, 1.0], [-1.0, 1.0], [math.inf, 1.0], [math.nan, 1.0]):
        r = stats.paired_ratio(bad, [1.0, 1.0])
        assert r.ratio is None and r.lo is None and "no log ratio" in str(r.reason)
    zero_base = stats.paired_ratio([1.0, 2.0], [0.0, 1.0])
    assert zero_base.ratio is None and zero_base.reason
    same = stats.paired_ratio([2.0, 4.0, 8.0], [1.0, 2.0, 4.0])
    assert same.ratio == pytest.approx(2.0) and same.lo is None and same.p is None
    assert same.mde_ratio is None and "all 3 ratios equal" in str(same.reason)
    assert same.brief() == "2.000" and none.brief() == "-"
    with pytest.raises(ValueError, match="not pairs"):
        stats.paired_ratio([1.0, 2.0], [1.0])


def test_pairs_by_key() -> None:
    keys, a, b = stats.pairs_by_key({1: 1.0, 2: 2.0, 3: 3.0}, {3: 30.0, 1: 10.0, 4: 40.0})
    assert (keys, a, b) == ([1, 3], [1.0, 3.0], [10.0, 30.0])


# ---- the smallest detectable change -----------------------------------------------

def test_detectable_shift_has_the_power_it_claims() -> None:
    # simulate the paired t-test at the shift found: it rejects 80 % of the time
    import numpy as np
    n, sd = 6, 0.1
    shift = stats.detectable_shift(sd / math.sqrt(n), n - 1)
    rng = np.random.default_rng(7)
    x = rng.normal(shift, sd, size=(40_000, n))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(n))
    power = float(np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, n - 1)))
    assert power == pytest.approx(0.80, abs=0.01)
    # many degrees of freedom: the normal approximation z(0.975) + z(0.8) = 2.80
    assert stats.detectable_shift(1.0, 10_000) == pytest.approx(2.8016, abs=0.002)
    with pytest.raises(ValueError):
        stats.detectable_shift(0.0, 4)


def test_mde_shrinks_with_n() -> None:
    mdes = []
    for k in (1, 2, 4, 8):
        base = BASE * k
        cell = PAIRED * k
        r = stats.paired_ratio(cell, base)
        assert r.mde_ratio is not None and r.mde_pct is not None
        mdes.append(r.mde_ratio)
    assert mdes == sorted(mdes, reverse=True) and mdes[0] > 1.3 and 1.0 < mdes[-1] < 1.1
    # Welch's, in % of the baseline's mean
    c = stats.compare(B, A)
    assert c is not None and c.mde_pct is not None and c.mde_pct > 100


def test_mean_interval() -> None:
    m = stats.mean_interval(A)
    lo, hi = scipy_stats.t.interval(0.95, 4, loc=3.0, scale=scipy_stats.sem(A))
    assert m.lo == pytest.approx(lo) and m.hi == pytest.approx(hi) and m.reason is None
    assert stats.mean_interval([]).reason == "no values"
    assert stats.mean_interval([4.0]).lo is None
    flat = stats.mean_interval([24.0, 24.0, 24.0])
    assert flat.mean == 24.0 and flat.lo is None and "equal" in str(flat.reason)


# ---- targets ------------------------------------------------------------------------

def test_target_verdict_three_ways() -> None:
    at_most = stats.Target(1.05)
    assert at_most.verdict(0.98, 1.04) == stats.MET
    assert at_most.verdict(0.98, 1.05) == stats.MET           # the bound is inside
    assert at_most.verdict(1.06, 1.30) == stats.NOT_MET
    assert at_most.verdict(1.00, 1.10) == stats.NOT_SHOWN      # straddles the bound
    assert at_most.verdict(None, None) == stats.NOT_SHOWN
    assert at_most.verdict(math.nan, 1.0) == stats.NOT_SHOWN
    at_least = stats.Target(1.0, at_most=False)
    assert at_least.verdict(1.01, 1.2) == stats.MET
    assert at_least.verdict(0.5, 0.9) == stats.NOT_MET
    assert at_least.verdict(0.9, 1.1) == stats.NOT_SHOWN
    assert at_most.text() == "<= 1.05" and at_least.text() == ">= 1"
    with pytest.raises(ValueError):
        at_most.verdict(2.0, 1.0)


# ---- a family of p-values -------------------------------------------------------------

def test_holm_and_bh_small_by_hand() -> None:
    ps = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 x 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum 0.02, 0.03, 0.06, 0.06
    h = stats.holm(ps)
    assert h.p == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert h.reject == [True, False, False, True]
    # x 4 / rank: 0.02, 0.02, 0.04, 0.04; running minimum from the top: the same
    bh = stats.benjamini_hochberg(ps)
    assert bh.p == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert bh.reject == [True, True, True, True]
    assert stats.holm([]) == stats.Adjusted([], [])
    assert stats.benjamini_hochberg([0.5]).p == [0.5]


def test_holm_and_bh_benjamini_hochberg_1995() -> None:
    # Benjamini & Hochberg (1995), section 4: 15 p-values; at 0.05 Holm
    # rejects 3 hypotheses, the FDR procedure 4
    ps = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
          0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000]
    h = stats.holm(ps)
    bh = stats.benjamini_hochberg(ps)
    assert sum(h.reject) == 3 and h.reject[:3] == [True] * 3
    assert sum(bh.reject) == 4 and bh.reject[:4] == [True] * 4
    assert h.p[3] == pytest.approx(12 * 0.0095)
    assert bh.p[3] == pytest.approx(15 * 0.0095 / 4)
    # order does not matter
    rev = stats.benjamini_hochberg(ps[::-1])
    assert rev.p == pytest.approx(bh.p[::-1])


def test_adjustments_refuse_bad_p() -> None:
    for bad in ([0.5, 1.5], [-0.1], [math.nan]):
        with pytest.raises(ValueError, match="p-value"):
            stats.holm(bad)
        with pytest.raises(ValueError, match="p-value"):
            stats.benjamini_hochberg(bad)
