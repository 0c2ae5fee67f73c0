"""Inference over a handful of trials: intervals, tests, multiplicity, and how stable a pick is.

A study has few trials (5 in the committed results), so the method behind every interval
was chosen by measurement (`coverage`, `tests/analysis/test_statistics.py`): data sets of n values
are drawn from a normal, a skewed (lognormal, σ = 1) and a heavy-tailed (Student t, 3
degrees of freedom) distribution, and each method's nominal 95% interval of the mean is
checked against the true mean.

- **Student-t** (`t_interval`): mean ± t(0.975, n − 1) · s / √n. Exact for normal data
  at any n (95.0%); it under-covers skewed data at small n, less than the bootstrap does.
- **Percentile bootstrap** (`percentile_bounds`): the 2.5% and 97.5% quantiles of
  resampled means. At n = 5 it covers normal data about 84% of the time: its intervals
  are too narrow because a resample of 5 values varies less than a new sample does.
- **BCa** (`bca_bounds`): the bootstrap with bias and skew corrections; no better than
  the percentile bootstrap at n ≤ 10.

Intervals are therefore Student-t, on trial means and on paired per-trial differences,
and a difference's test is the matching one-sample t-test (`t_pvalue`: its p < 0.05
exactly when the interval excludes 0). A family of tests (one per pruning round) is
adjusted with Holm's step-down method (`holm`). How stable a pick among rounds is
(`pick_shares`) is measured by resampling whole trials. Everything is seeded, so every
report is byte-identical.

The distribution functions are scipy.special's (`stdtr`, `stdtrit`, `ndtr`, `ndtri`): the
very functions behind scipy.stats' `t.sf`, `t.ppf`, `norm.cdf` and `norm.ppf`, bit for bit
(`tests/analysis/test_statistics.py`), without scipy.stats' import (~0.9 s of every figure,
report and comparison process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import special

CONFIDENCE = 0.95
#: Fewest values for which an interval (or a test) is given.
MIN_INTERVAL_TRIALS = 3
#: The method, as the report names it.
METHOD = "Student-t"
#: Resamples and seed of every bootstrap here (selection shares, the simulated bootstraps).
RESAMPLES = 10_000
SEED = 0
#: Simulated data sets per (distribution, n) for the coverage the report states.
COVERAGE_SIMS = 20_000
#: The distributions of the coverage simulation (true mean in the second place).
DISTRIBUTIONS: dict[str, tuple[Callable[[np.random.Generator, tuple[int, int]], np.ndarray], float]]
DISTRIBUTIONS = {
    "normal": (lambda rng, size: rng.standard_normal(size), 0.0),
    "lognormal": (lambda rng, size: rng.lognormal(0.0, 1.0, size), float(np.exp(0.5))),
    "t3": (lambda rng, size: rng.standard_t(3, size), 0.0),
}
#: Methods `coverage` measures.
METHODS: tuple[str, ...] = ("t", "percentile", "bca")


# ---------------------------------------------------------------- one set of values


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """The Student-t interval of the mean; None with fewer than `MIN_INTERVAL_TRIALS`."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < MIN_INTERVAL_TRIALS:
        return None
    lo, hi = t_bounds(x[None, :], confidence)
    return float(lo[0]), float(hi[0])


def t_pvalue(values: Sequence[float] | np.ndarray) -> float | None:
    """Two-sided p of the one-sample t-test of mean 0 (None with too few values).

    Values that are all equal give p = 1 when they are 0 and p = 0 otherwise (the t
    statistic is then 0 / 0 or infinite)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < MIN_INTERVAL_TRIALS:
        return None
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / np.sqrt(x.size))
    return float(2.0 * special.stdtr(x.size - 1, -abs(t)))  # t's survival function


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None entries stay None and do
    not count in the family). Adjusted p < α rejects with family-wise error at most α."""
    known = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    m, running = len(known), 0.0
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# ------------------------------------------------------------- many sets at once


def t_bounds(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Student-t bounds of each row's mean (rows are data sets of n values)."""
    n = x.shape[1]
    mean = x.mean(axis=1)
    half = special.stdtrit(n - 1, 0.5 + confidence / 2.0) * x.std(axis=1, ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def _resampled_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, resamples): the means of `resamples` bootstrap resamples of each row."""
    rows, n = x.shape
    idx = rng.integers(0, n, size=(rows, resamples, n))
    return np.take_along_axis(x[:, None, :], idx, axis=2).mean(axis=2)


def percentile_bounds(
    x: np.ndarray, resamples: int, rng: np.random.Generator, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap bounds of each row's mean."""
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(_resampled_means(x, resamples, rng), [tail, 1.0 - tail], axis=1)
    return lo, hi


def bca_bounds(
    x: np.ndarray, resamples: int, rng: np.random.Generator, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated bootstrap bounds of each row's mean (Efron 1987)."""
    n = x.shape[1]
    means = _resampled_means(x, resamples, rng)
    observed = x.mean(axis=1, keepdims=True)
    share = ((means < observed).mean(axis=1) + 0.5 * (means == observed).mean(axis=1)).clip(
        1.0 / resamples, 1.0 - 1.0 / resamples
    )
    z0 = special.ndtri(share)
    jack = (x.sum(axis=1, keepdims=True) - x) / (n - 1)  # leave-one-out means
    d = jack.mean(axis=1, keepdims=True) - jack
    denom = 6.0 * (d**2).sum(axis=1) ** 1.5
    accel = np.divide((d**3).sum(axis=1), denom, out=np.zeros(len(x)), where=denom > 0)
    out = []
    for z in special.ndtri([(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]):
        level = special.ndtr(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
        out.append(np.array([np.quantile(m, q) for m, q in zip(means, level, strict=True)]))
    return out[0], out[1]


def coverage(
    method: str,
    distribution: str,
    n: int,
    sims: int = COVERAGE_SIMS,
    seed: int = SEED,
    resamples: int = 2_000,
) -> float:
    """The share of `sims` simulated data sets of `n` values whose nominal 95% interval
    (`method`: "t", "percentile" or "bca") holds the distribution's true mean."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    draw, truth = DISTRIBUTIONS[distribution]
    rng = np.random.default_rng(seed)
    x = draw(rng, (sims, n))
    if method == "t":
        lo, hi = t_bounds(x)
    else:
        bounds = percentile_bounds if method == "percentile" else bca_bounds
        chunks = [bounds(c, resamples, rng) for c in np.array_split(x, max(1, sims // 500))]
        lo, hi = (np.concatenate([c[i] for c in chunks]) for i in (0, 1))
    return float(((lo <= truth) & (truth <= hi)).mean())


def coverage_table(
    methods: Sequence[str] = METHODS,
    ns: Sequence[int] = (3, 5, 10),
    sims: int = COVERAGE_SIMS,
    resamples: int = 2_000,
) -> dict[str, dict[str, dict[int, float]]]:
    """method -> distribution -> n -> coverage (`coverage`, one seed for all)."""
    return {
        m: {d: {n: coverage(m, d, n, sims, SEED, resamples) for n in ns} for d in DISTRIBUTIONS}
        for m in methods
    }


# --------------------------------------------------------------- picks among rounds


def pick_shares(
    per_trial: np.ndarray,
    highest: bool,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    decimals: int = 9,
) -> np.ndarray | None:
    """For each option (a column of `per_trial`, rows are trials), the share of bootstrap
    resamples of whole trials whose mean picks it: the highest mean (`highest`) or the
    lowest, equal means (to `decimals`) going to the last column, as in the report's picks
    (its columns run from the densest to the sparsest round). None with fewer than
    `MIN_INTERVAL_TRIALS` trials."""
    x = np.asarray(per_trial, dtype=np.float64)
    if x.shape[0] < MIN_INTERVAL_TRIALS or x.shape[1] == 0:
        return None
    idx = np.random.default_rng(seed).integers(0, x.shape[0], size=(resamples, x.shape[0]))
    means = np.round(x[idx].mean(axis=1), decimals)  # (resamples, options)
    if not highest:
        means = -means
    last = x.shape[1] - 1 - np.argmax(means[:, ::-1], axis=1)
    return np.bincount(last, minlength=x.shape[1]) / resamples
