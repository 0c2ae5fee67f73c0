"""Statistics per cell, one (condition, round), over trial means; paired differences; series.

A cell's mean, min–max and 95% interval are all over trial means (repeats of one trial
are averaged first). Intervals are Student-t, chosen by a coverage simulation
(`lottery.analysis.statistics`); with fewer than `MIN_INTERVAL_TRIALS` trials no interval
is computed (None). Differences between two cells are paired by trial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from lottery.analysis import statistics
from lottery.analysis.frames import as_runs, condition_rank, ordered_conditions

ES = "early_stop_iteration"
ACC = "test_accuracy_at_early_stop"
ACC_STOP = "test_accuracy_at_stop"
VAL_ACC = "val_accuracy_at_early_stop"
#: The `Cell` attribute holding each metric's statistics.
CELL_STAT = {
    ES: "early_stop",
    ACC: "accuracy",
    VAL_ACC: "val_accuracy",
    ACC_STOP: "accuracy_at_stop",
}
STAT_NAMES: tuple[str, ...] = ("mean", "min", "max", "ci_low", "ci_high")
CONFIDENCE = statistics.CONFIDENCE
#: Fewest trials for which an interval is given.
MIN_INTERVAL_TRIALS = statistics.MIN_INTERVAL_TRIALS
#: Guard against float noise when comparing means that should be equal.
EPS = 1e-9

Data: TypeAlias = pd.DataFrame | Iterable[Mapping[str, Any]]  # a runs frame, or metrics dicts


def interval(values: Sequence[float] | np.ndarray) -> tuple[float, float] | None:
    """95% Student-t interval of the mean; None with fewer than 3 values."""
    return statistics.t_interval(values)


def trial_values(runs: pd.DataFrame, key: str) -> pd.Series:
    """Mean of `key` per (condition, round, trial): repeats of one trial averaged."""
    return runs.groupby(["condition", "round", "trial"], sort=False)[key].mean().astype(float)


@dataclass(frozen=True)
class Stats:
    """A metric over the runs of one (condition, round)."""

    mean: float
    min: float
    max: float
    ci_low: float | None  # 95% Student-t over trial means; None with < 3 trials
    ci_high: float | None

    def scaled(self, factor: float) -> Stats:
        def mul(v: float | None) -> float | None:
            return None if v is None else factor * v

        return Stats(
            factor * self.mean,
            factor * self.min,
            factor * self.max,
            mul(self.ci_low),
            mul(self.ci_high),
        )


def stats(per_trial: pd.Series) -> Stats:
    """Mean, min, max and the 95% interval, all over the per-trial means."""
    v = per_trial.astype(float)
    ci = interval(v.to_numpy())
    return Stats(
        float(v.mean()),
        float(v.min()),
        float(v.max()),
        None if ci is None else ci[0],
        None if ci is None else ci[1],
    )


def cell_table(
    data: Data,
    keys: Sequence[str] = (ES, ACC, ACC_STOP, VAL_ACC),
) -> pd.DataFrame:
    """One row per (condition, round): percent_remaining, n_runs, n_trials, n_censored and,
    for each of `keys`, `<key>_mean`, `_min`, `_max`, `_ci_low`, `_ci_high` (all over the
    trial means)."""
    runs = as_runs(data)
    columns = ["condition", "round", "percent_remaining", "n_runs", "n_trials", "n_censored"]
    columns += [f"{k}_{s}" for k in keys for s in STAT_NAMES]
    rows = []
    per_trial = {k: trial_values(runs, k) for k in keys} if not runs.empty else {}
    for (cond, rnd), group in runs.groupby(["condition", "round"], sort=False):
        row: dict[str, Any] = {
            "condition": cond,
            "round": int(rnd),
            "percent_remaining": float(group["percent_remaining"].mean()),
            "n_runs": len(group),
            "n_trials": group["trial"].nunique(),
            "n_censored": int(group["censored"].sum()),
        }
        for k in keys:
            s = stats(per_trial[k].loc[(cond, rnd)])
            row.update({f"{k}_{name}": getattr(s, name) for name in STAT_NAMES})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def cell_stats(row: Mapping[str, Any], key: str) -> Stats:
    """The `Stats` of `key` from one row of `cell_table`."""
    ci_low, ci_high = row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    return Stats(
        float(row[f"{key}_mean"]),
        float(row[f"{key}_min"]),
        float(row[f"{key}_max"]),
        None if ci_low is None or pd.isna(ci_low) else float(ci_low),
        None if ci_high is None or pd.isna(ci_high) else float(ci_high),
    )


# --------------------------------------------------------------------- typed cells


@dataclass(frozen=True)
class Cell:
    """One (condition, round): its statistics over trial means (accuracies as fractions)."""

    condition: str
    round: int
    percent_remaining: float
    n_runs: int
    n_trials: int
    n_censored: int
    early_stop: Stats
    accuracy: Stats  # test accuracy at early stop
    accuracy_at_stop: Stats  # test accuracy when training stopped
    val_accuracy: Stats  # validation accuracy at early stop

    @property
    def censored(self) -> bool:
        return self.n_censored > 0


def cells(data: Data) -> list[Cell]:
    """Every (condition, round), ordered by condition then round."""
    table = cell_table(data, (ES, ACC, ACC_STOP, VAL_ACC))
    out = [
        Cell(
            condition=str(row["condition"]),
            round=int(row["round"]),
            percent_remaining=float(row["percent_remaining"]),
            n_runs=int(row["n_runs"]),
            n_trials=int(row["n_trials"]),
            n_censored=int(row["n_censored"]),
            early_stop=cell_stats(row, ES),
            accuracy=cell_stats(row, ACC),
            accuracy_at_stop=cell_stats(row, ACC_STOP),
            val_accuracy=cell_stats(row, VAL_ACC),
        )
        for row in table.to_dict("records")
    ]
    return sorted(out, key=lambda c: (condition_rank(c.condition), c.round))


# --------------------------------------------------------------------- differences


@dataclass(frozen=True)
class Difference:
    """Mean over trials of a paired difference (a − b per trial), with its 95% interval
    and the two-sided p of its t-test (p < 0.05 exactly when the interval excludes 0)."""

    mean: float
    ci_low: float | None
    ci_high: float | None
    n_trials: int
    p_value: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    @property
    def sign(self) -> int:
        """+1 / -1 when the interval lies above / below 0; 0 when it straddles 0 or is absent."""
        if self.ci_low is None or self.ci_high is None:
            return 0
        if self.ci_low > 0:
            return 1
        if self.ci_high < 0:
            return -1
        return 0


def paired_difference(
    data: Data,
    key: str,
    a: tuple[str, int],
    b: tuple[str, int],
    scale: float = 1.0,
) -> Difference | None:
    """`scale` × (a − b) of `key`, paired by trial over the trials both cells have.

    a and b are (condition, round). None when they share no trial.
    """
    runs = as_runs(data)
    per_trial = trial_values(runs, key)
    try:
        xa, xb = per_trial.loc[a], per_trial.loc[b]
    except KeyError:
        return None
    common = sorted(set(xa.index) & set(xb.index))
    if not common:
        return None
    return mean_difference(scale * (xa.loc[common].to_numpy() - xb.loc[common].to_numpy()))


def mean_difference(diffs: np.ndarray) -> Difference:
    """The mean of per-trial differences with its 95% Student-t interval and t-test."""
    ci = interval(diffs)
    return Difference(
        float(diffs.mean()),
        None if ci is None else ci[0],
        None if ci is None else ci[1],
        len(diffs),
        statistics.t_pvalue(diffs),
    )


# ------------------------------------------------------------------ series by condition


@dataclass(frozen=True)
class Series:
    """One line of a plot: a condition's statistic by round, ordered by round."""

    condition: str
    rounds: list[int]
    percent_remaining: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    n_runs: list[int]
    n_censored: list[int]

    @property
    def has_band(self) -> bool:
        """A min-max band is drawn only where some point has more than one run."""
        return max(self.n_runs, default=0) > 1


def condition_series(data: Data, key: str, scale: float = 1.0) -> dict[str, Series]:
    """condition -> Series of `key` (times `scale`), conditions in registry order."""
    table = cell_table(data, (key,))
    out: dict[str, Series] = {}
    for cond in ordered_conditions(table["condition"]):
        c = table[table["condition"] == cond].sort_values("round")
        out[cond] = Series(
            condition=cond,
            rounds=[int(r) for r in c["round"]],
            percent_remaining=[float(p) for p in c["percent_remaining"]],
            mean=[scale * float(v) for v in c[f"{key}_mean"]],
            low=[scale * float(v) for v in c[f"{key}_min"]],
            high=[scale * float(v) for v in c[f"{key}_max"]],
            n_runs=[int(n) for n in c["n_runs"]],
            n_censored=[int(n) for n in c["n_censored"]],
        )
    return out
