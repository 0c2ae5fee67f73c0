"""A study's metrics and learning curves as pandas DataFrames, and the statistics over them:
the analysis package's one import for a notebook and for the report modules.

From a notebook, at the root of a study (the project, or a copy such as
`reports/results/lenet-5trials-10k`)::

    from lottery.analysis import results

    runs = results.load(".")            # one row per trained network
    curves = results.load_curves(".")   # one row per (network, evaluated iteration)
    cells = results.cell_table(runs)    # one row per (condition, round): mean, min-max, 95% CI

`runs` has the columns `RUN_COLUMNS` (condition, round, run, trial, repeat,
percent_remaining), the metrics of `METRIC_COLUMNS`, the training settings of
`STUDY_COLUMNS` and `censored`.

The names below live in the modules that own them; this module gathers them:

- reading files: `lottery.analysis.frames` (and `lottery.analysis.legacy`, which maps
  metrics and curves files written by older versions to today's schema);
- **censoring** (`lottery.analysis.censoring`): a run's early stop is a lower bound when it
  stopped less than W iterations after its minimum validation loss, W from the committed
  patience evidence (`evidence_window`, `default_window`: `lottery.analysis.patience`).
  Without a window (`window=None`, the default of `runs_frame`) the rule is the narrowest
  one: the run reached the horizon with its minimum in the last two evaluations;
- **cells** (`lottery.analysis.cells`): a cell's mean, min–max and 95% Student-t interval
  are all over trial means (repeats of one trial averaged first); no interval with fewer
  than `MIN_INTERVAL_TRIALS` trials; differences are paired by trial.
"""

from __future__ import annotations

from lottery.analysis.cells import (
    CONFIDENCE,
    MIN_INTERVAL_TRIALS,
    STAT_NAMES,
    Difference,
    Series,
    Stats,
    cell_stats,
    cell_table,
    condition_series,
    interval,
    mean_difference,
    paired_difference,
    stats,
    trial_values,
)
from lottery.analysis.censoring import CensoringWindow, censor, censor_from, is_censored
from lottery.analysis.frames import (
    CURVE_COLUMNS,
    METRIC_COLUMNS,
    RUN_COLUMNS,
    as_runs,
    condition_rank,
    curves_frame,
    load,
    load_curves,
    load_metrics,
    metrics_files,
    ordered_conditions,
    read_curves,
    runs_frame,
)
from lottery.analysis.legacy import LEGACY_RUN_KEYS, STUDY_COLUMNS, normalise, training_settings
from lottery.analysis.patience import EVIDENCE, default_window, evidence_window

__all__ = [
    "CONFIDENCE",
    "CURVE_COLUMNS",
    "EVIDENCE",
    "LEGACY_RUN_KEYS",
    "METRIC_COLUMNS",
    "MIN_INTERVAL_TRIALS",
    "RUN_COLUMNS",
    "STAT_NAMES",
    "STUDY_COLUMNS",
    "CensoringWindow",
    "Difference",
    "Series",
    "Stats",
    "as_runs",
    "cell_stats",
    "cell_table",
    "censor",
    "censor_from",
    "condition_rank",
    "condition_series",
    "curves_frame",
    "default_window",
    "evidence_window",
    "interval",
    "is_censored",
    "load",
    "load_curves",
    "load_metrics",
    "mean_difference",
    "metrics_files",
    "normalise",
    "ordered_conditions",
    "paired_difference",
    "read_curves",
    "runs_frame",
    "stats",
    "training_settings",
    "trial_values",
]
