"""The interval method, chosen by a coverage simulation; tests, Holm, and pick shares.

The coverage the simulation measured (nominal 95%, 20,000 data sets per cell, seed 0;
the bootstraps with 2,000 resamples):

    method       distribution   n=3     n=5     n=10
    Student-t    normal         95.1%   95.0%   95.1%
                 lognormal      84.0%   82.2%   84.1%
                 t3             96.2%   96.1%   95.8%
    percentile   normal         75.1%   83.7%   90.3%
    bootstrap    lognormal      64.4%   72.0%   80.4%
                 t3             74.8%   83.1%   89.2%
    BCa          normal         72.4%   83.9%   90.2%
                 lognormal      62.7%   74.1%   82.9%
                 t3             71.0%   81.3%   86.4%

Student-t is within 2 points of nominal for normal data at every n, and closest to it
for the skewed and heavy-tailed data; the bootstraps under-cover everywhere at n ≤ 10.
The Student-t rows are asserted below (all of them, fast); the bootstrap rows are spot-
checked on fewer data sets.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from lottery.analysis import statistics

#: Student-t coverage per distribution and n, as measured (see the module doc).
T_COVERAGE: dict[str, dict[int, float]] = {
    "normal": {3: 0.951, 5: 0.950, 10: 0.951},
    "lognormal": {3: 0.840, 5: 0.822, 10: 0.841},
    "t3": {3: 0.962, 5: 0.961, 10: 0.958},
}


@pytest.mark.parametrize("n", [3, 5, 10])
def test_student_t_covers_normal_data_within_two_points(n: int) -> None:
    assert abs(statistics.coverage("t", "normal", n) - statistics.CONFIDENCE) <= 0.02


@pytest.mark.parametrize(
    ("distribution", "n"), [(d, n) for d in ("lognormal", "t3") for n in (3, 5, 10)]
)
def test_student_t_coverage_of_skewed_and_heavy_tailed_data_is_as_recorded(
    distribution: str, n: int
) -> None:
    measured = statistics.coverage("t", distribution, n)
    assert measured == pytest.approx(T_COVERAGE[distribution][n], abs=0.002)
    if distribution == "lognormal":
        assert measured < 0.9  # skew: the t-interval under-covers, as stated in the report


def test_the_bootstraps_under_cover_at_five_values() -> None:
    """The percentile bootstrap (the old method) and BCa miss 95% by 10 points at n = 5,
    where Student-t is on target: the reason for the choice."""
    for method in ("percentile", "bca"):
        cov = statistics.coverage(method, "normal", 5, sims=2_000, resamples=1_000)
        assert 0.78 < cov < 0.89
    assert statistics.coverage("percentile", "lognormal", 5, sims=2_000, resamples=1_000) < 0.8
    with pytest.raises(ValueError, match="unknown method"):
        statistics.coverage("jackknife", "normal", 5)


def test_t_interval_is_scipys_and_needs_three_values() -> None:
    x = [0.1, 0.4, 0.2, 0.9, 0.5]
    expected = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert statistics.t_interval(x) == pytest.approx(expected)
    assert statistics.t_interval([1.0, 2.0]) is None
    assert statistics.t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    # Three values: mean ± 4.303 · s / √3 (t with 2 degrees of freedom).
    lo, hi = statistics.t_interval([600.0, 700.0, 800.0]) or (0.0, 0.0)
    assert (lo, hi) == pytest.approx((700 - 248.42, 700 + 248.42), abs=0.01)


def test_the_distribution_functions_are_scipy_stats_bit_for_bit() -> None:
    """statistics uses scipy.special's functions, not scipy.stats' (its import costs ~0.9 s
    per process): the same floats, so every committed report stays byte for byte."""
    rng = np.random.default_rng(0)
    q = np.concatenate([rng.random(5_000), [0.025, 0.5, 0.975, 0.995, 1e-300]])
    t = np.concatenate([np.abs(rng.standard_normal(5_000)) * 10.0, [0.0, 1e-300, np.inf]])
    bits = np.ndarray.tobytes
    for df in (1, 2, 4, 9, 29):
        assert bits(special.stdtrit(df, q)) == bits(sps.t.ppf(q, df))
        assert bits(special.stdtr(df, -t)) == bits(sps.t.sf(t, df))
    assert bits(special.ndtri(q)) == bits(sps.norm.ppf(q))
    assert bits(special.ndtr(t - 5.0)) == bits(sps.norm.cdf(t - 5.0))


def test_t_pvalue_is_the_one_sample_t_test() -> None:
    x = [0.12, -0.03, 0.2, 0.08, 0.15]
    assert statistics.t_pvalue(x) == pytest.approx(sps.ttest_1samp(x, 0.0).pvalue)
    assert statistics.t_pvalue([0.3, 0.3, 0.3]) == 0.0
    assert statistics.t_pvalue([0.0, 0.0, 0.0]) == 1.0
    assert statistics.t_pvalue([0.1, 0.2]) is None
    # p < 0.05 exactly when the 95% interval excludes 0.
    rng = np.random.default_rng(1)
    for _ in range(200):
        v = rng.normal(0.5, 1.0, 5)
        lo, hi = statistics.t_interval(v) or (0.0, 0.0)
        assert ((statistics.t_pvalue(v) or 1.0) < 0.05) == (lo > 0 or hi < 0)


def test_holm() -> None:
    adjusted = statistics.holm([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 -> max(0.06, 0.04)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert statistics.holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert statistics.holm([0.9, 0.8]) == [1.0, pytest.approx(1.0)]
    assert statistics.holm([]) == []


def test_pick_shares() -> None:
    clear = np.array([[1.0, 2.0, 0.0], [1.1, 2.1, 0.1], [0.9, 1.9, 0.2]])
    shares = statistics.pick_shares(clear, highest=True)
    assert shares is not None and shares.tolist() == [0.0, 1.0, 0.0]
    low = statistics.pick_shares(clear, highest=False)
    assert low is not None and low.tolist() == [0.0, 0.0, 1.0]
    # Equal means go to the last (sparsest) column, as the report's picks do.
    tied = statistics.pick_shares(np.ones((4, 3)), highest=True)
    assert tied is not None and tied.tolist() == [0.0, 0.0, 1.0]
    # Two close columns that swap between trials: both get a share, summing to 1.
    close = np.array([[1.0, 1.1], [1.2, 1.0], [1.0, 1.05], [1.1, 1.0], [1.0, 1.01]])
    shares = statistics.pick_shares(close, highest=True)
    assert shares is not None and 0.2 < shares[0] < 0.8 and shares.sum() == pytest.approx(1.0)
    assert statistics.pick_shares(clear[:2], highest=True) is None
    # Seeded: the same shares every time.
    again = statistics.pick_shares(close, highest=True)
    assert again is not None and again.tolist() == shares.tolist()
