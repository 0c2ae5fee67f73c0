"""A study's metrics and learning curves as pandas DataFrames, and the statistics over them.

From a notebook, at the root of a study (the project, or a copy such as
`reports/results/lenet-5trials-10k`)::

    from lottery.analysis import results

    runs = results.load(".")            # one row per trained network
    curves = results.load_curves(".")   # one row per (network, evaluated iteration)
    cells = results.cell_table(runs)    # one row per (condition, round): mean, min-max, 95% CI

`runs` has the columns `RUN_COLUMNS` (condition, round, run, trial, repeat,
percent_remaining), the metrics of `METRIC_COLUMNS`, the training settings of
`STUDY_COLUMNS` and `censored`.

**Censoring.** A run's early-stop iteration is only a lower bound (and its accuracy may be
understated) when it stopped too soon after its minimum validation loss for a later,
lower minimum to be ruled out. With a window of W iterations (`CensoringWindow`: the
reports take W from the committed patience evidence, `evidence_window`) a run is censored
when it stopped, at the horizon or by patience, less than W iterations after its minimum;
W is the longest wait between two successive new minima seen in full-horizon training, so
a patience of at least W never censors. Without a window (`window=None`, the default of
`runs_frame`) the rule is the narrowest one: the run reached the horizon with its minimum
in the last two evaluations.

**Cells.** A cell's mean, min–max and 95% interval are all over trial means (repeats of
one trial are averaged first). Intervals are Student-t, chosen by a coverage simulation
(`lottery.statistics`). With fewer than `MIN_INTERVAL_TRIALS` trials no interval is
computed (None).

**Legacy files.** Metrics written before `stop_iteration` existed (`final_test_accuracy`,
`final_val_loss`, no `eval_every`) are mapped to today's names; their runs trained to the
horizon (`stop_iteration` = `iterations`, `stop_reason` = "horizon"), and `eval_every` /
`iterations` come from the study's `params.yaml`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from lottery.analysis import statistics
from lottery.core import conditions, io, paths
from lottery.core.paths import round_name

#: Conditions in the order they are drawn and tabulated (the layout's directories).
CONDITIONS: tuple[str, ...] = conditions.CONDITIONS
#: Identify one run.
RUN_COLUMNS: tuple[str, ...] = (
    "condition",
    "round",
    "run",
    "trial",
    "repeat",
    "percent_remaining",
)
#: Per-run metrics (accuracies and losses as fractions / raw values, iterations as ints).
METRIC_COLUMNS: tuple[str, ...] = (
    "early_stop_iteration",
    "val_loss_at_early_stop",
    "val_accuracy_at_early_stop",
    "test_accuracy_at_early_stop",
    "stop_iteration",
    "stop_reason",
    "test_accuracy_at_stop",
    "val_loss_at_stop",
)
#: The training settings a metrics file records (the same for every run of a file).
STUDY_COLUMNS: tuple[str, ...] = ("eval_every", "iterations", "patience")
#: Old run keys -> today's.
LEGACY_RUN_KEYS: dict[str, str] = {
    "final_test_accuracy": "test_accuracy_at_stop",
    "final_val_loss": "val_loss_at_stop",
}
CURVE_COLUMNS: tuple[str, ...] = (
    "train_loss",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
)
STAT_NAMES: tuple[str, ...] = ("mean", "min", "max", "ci_low", "ci_high")
CONFIDENCE = statistics.CONFIDENCE
#: Fewest trials for which an interval is given.
MIN_INTERVAL_TRIALS = statistics.MIN_INTERVAL_TRIALS
#: This checkout's committed patience evidence (`lottery.patience`): the censoring window's.
EVIDENCE = paths.Layout(Path(__file__).resolve().parents[1]).patience_dir() / "curves.json"


# ------------------------------------------------------------------------- loading


def training_settings(params_file: str | Path) -> dict[str, int]:
    """eval_every, iterations and patience from a params.yaml ({} when there is none)."""
    path = Path(params_file)
    if not path.is_file():
        return {}
    train = (yaml.safe_load(path.read_text()) or {}).get("train") or {}
    out = {k: int(train[k]) for k in ("eval_every", "iterations") if k in train}
    out["patience"] = int(train.get("patience", 0) or 0)
    return out


def normalise(metrics: Mapping[str, Any], defaults: Mapping[str, int] | None = None) -> dict:
    """A copy of one metrics file in today's schema (see the module doc for legacy files).

    `defaults` supplies eval_every / iterations / patience when the file lacks them.
    Raises KeyError naming the file's condition and round when neither has them.
    """
    m = copy.deepcopy(dict(metrics))
    defaults = dict(defaults or {})
    defaults.setdefault("patience", 0)
    for key in STUDY_COLUMNS:
        if m.get(key) is None:
            if key not in defaults:
                raise KeyError(
                    f"metrics of {m.get('condition')!r} round {m.get('round')!r} have no "
                    f"{key!r}, and no params.yaml gave one"
                )
            m[key] = defaults[key]
    for run in (m.get("runs") or {}).values():
        for old, new in LEGACY_RUN_KEYS.items():
            if old in run:
                run.setdefault(new, run.pop(old))
        run.setdefault("stop_iteration", int(m["iterations"]))
        run.setdefault("stop_reason", "horizon")
        run.setdefault("percent_remaining", m.get("percent_remaining"))
    summary = m.get("summary") or {}
    for old, new in LEGACY_RUN_KEYS.items():
        if old in summary:
            summary.setdefault(new, summary.pop(old))
    return m


def censor_from(stop_iteration: int, eval_every: int) -> int:
    """The second-to-last evaluation of a run that trained `stop_iteration` iterations.

    Evaluations happen every `eval_every` iterations and after the last one.
    """
    if stop_iteration % eval_every == 0:
        return stop_iteration - eval_every
    return (stop_iteration // eval_every) * eval_every


def is_censored(
    stop_reason: str,
    early_stop_iteration: float,
    stop_iteration: int,
    eval_every: int,
    window: int | None = None,
) -> bool:
    """Stopped less than `window` iterations after the minimum; without a window: stopped
    at the horizon with the minimum validation loss in the last two evaluations."""
    if window is not None:
        return int(stop_iteration) - float(early_stop_iteration) < window
    if stop_reason != "horizon":
        return False
    return early_stop_iteration >= censor_from(int(stop_iteration), int(eval_every))


@dataclass(frozen=True)
class CensoringWindow:
    """W (`iterations`; None: the last-two-evaluations rule) and where it came from."""

    iterations: int | None
    source: str


def evidence_window(path: str | Path = EVIDENCE) -> CensoringWindow:
    """W from a patience evidence file (`lottery.patience`'s curves.json): the longest wait
    between two successive new minima of the validation loss over its runs, recomputed
    from their curves. Without the file, the last-two-evaluations rule (and says so)."""
    from lottery.analysis import patience

    path = Path(path)
    if not path.is_file():
        return CensoringWindow(
            None,
            f"no patience evidence was found ({path.name} of `lottery.patience`), so the "
            "narrowest rule applies: the minimum in the last two evaluations of a run that "
            "reached its horizon",
        )
    curves = patience.from_file(path)
    wait, longest = max((patience.smallest_safe_patience(c), i) for i, c in enumerate(curves))
    c = curves[longest]
    horizons = "/".join(f"{h:,}" for h in sorted({x.horizon for x in curves}))
    return CensoringWindow(
        wait,
        f"the longest wait between two successive new minima of the validation loss among "
        f"the {len(curves)} full-horizon runs ({horizons} iterations, patience 0) of the "
        f"patience evidence (`reports/patience/{path.name}`; {c.condition} round {c.round})",
    )


@functools.cache
def default_window() -> CensoringWindow:
    """The reports' censoring window: `evidence_window` of this checkout's evidence."""
    return evidence_window(EVIDENCE)


def censor(runs: pd.DataFrame, window: CensoringWindow | int | None) -> pd.DataFrame:
    """A copy of a runs frame with `censored` recomputed under `window`."""
    w = window.iterations if isinstance(window, CensoringWindow) else window
    out = runs.copy()
    out["censored"] = [
        is_censored(str(r), float(e), int(s), int(v), w)
        for r, e, s, v in zip(
            out["stop_reason"],
            out["early_stop_iteration"],
            out["stop_iteration"],
            out["eval_every"],
            strict=True,
        )
    ]
    return out


def condition_rank(condition: str) -> tuple[int, str]:
    if condition in CONDITIONS:
        return CONDITIONS.index(condition), ""
    return len(CONDITIONS), condition


def ordered_conditions(conditions: Iterable[str]) -> list[str]:
    """`CONDITIONS` order first, then any others alphabetically."""
    return sorted(set(conditions), key=condition_rank)


def runs_frame(
    metrics: Iterable[Mapping[str, Any]],
    defaults: Mapping[str, int] | None = None,
    window: int | None = None,
) -> pd.DataFrame:
    """One row per run of the given metrics files (normalised on the way); `censored`
    under `window` (`is_censored`).

    Rows are ordered by condition (`CONDITIONS` first), round, trial, repeat. Raises
    ValueError when two files hold the same (condition, round).
    """
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for raw in metrics:
        m = normalise(raw, defaults)
        cond, rnd = str(m["condition"]), int(m["round"])
        if (cond, rnd) in seen:
            raise ValueError(f"duplicate metrics for condition {cond!r}, round {rnd}")
        seen.add((cond, rnd))
        for key, run in (m.get("runs") or {}).items():
            row: dict[str, Any] = {
                "condition": cond,
                "round": rnd,
                "run": str(key),
                "trial": int(run["trial"]),
                "repeat": int(run.get("repeat") or 0),
                "percent_remaining": float(run["percent_remaining"]),
            }
            row.update({k: run.get(k) for k in METRIC_COLUMNS})
            row.update({k: int(m[k]) for k in STUDY_COLUMNS})
            row["censored"] = is_censored(
                str(row["stop_reason"]),
                float(row["early_stop_iteration"]),
                int(row["stop_iteration"]),
                int(row["eval_every"]),
                window,
            )
            rows.append(row)
    columns = [*RUN_COLUMNS, *METRIC_COLUMNS, *STUDY_COLUMNS, "censored"]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame["_rank"] = [condition_rank(c) for c in frame["condition"]]
    frame = frame.sort_values(["_rank", "round", "trial", "repeat"], kind="stable")
    return frame.drop(columns="_rank").reset_index(drop=True)


def metrics_files(root: str | Path) -> list[Path]:
    """Every metrics file of a study: `<root>/metrics/<condition>/<round>.json`."""
    return sorted(paths.Layout(Path(root)).metrics_dir.glob("*/*.json"))


def load_metrics(root: str | Path) -> list[dict[str, Any]]:
    """Every metrics file under `root`, normalised (settings from `<root>/params.yaml`)."""
    defaults = training_settings(Path(root) / "params.yaml")
    return [normalise(io.read_json(p), defaults) for p in metrics_files(root)]


def load(root: str | Path = ".", window: int | None = None) -> pd.DataFrame:
    """One row per run of the study at `root` (see the module doc for the columns)."""
    return runs_frame(load_metrics(root), window=window)


def curves_frame(
    curves: Mapping[str, Any], metrics: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per (run, iteration) of one curves file.

    Validation and training metrics are on `iteration`; test metrics on `test_iteration`
    when the file has it (legacy files evaluated test on `iteration`). Cells a run did not
    evaluate at that iteration are NaN. `metrics` (the same stage's metrics file) supplies
    trial and repeat.
    """
    run_info = (metrics or {}).get("runs") or {}
    frames = []
    for key, run in (curves.get("runs") or {}).items():
        base = pd.DataFrame({"iteration": [int(i) for i in run.get("iteration", [])]})
        for col in ("train_loss", "val_loss", "val_accuracy"):
            if col in run:
                base[col] = run[col]
        test_its = run.get("test_iteration", run.get("iteration", []))
        test = pd.DataFrame({"iteration": [int(i) for i in test_its]})
        for col in ("test_loss", "test_accuracy"):
            if col in run:
                test[col] = run[col]
        frame = base.merge(test, on="iteration", how="outer").sort_values("iteration")
        info = run_info.get(key, {})
        frame.insert(0, "repeat", int(info.get("repeat") or 0))
        frame.insert(0, "trial", info.get("trial"))
        frame.insert(0, "run", str(key))
        frame.insert(0, "round", int(curves["round"]))
        frame.insert(0, "condition", str(curves["condition"]))
        frames.append(frame)
    columns = ["condition", "round", "run", "trial", "repeat", "iteration", *CURVE_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).reindex(columns=columns)


def load_curves(root: str | Path = ".") -> pd.DataFrame:
    """Every learning curve of the study at `root` (stages whose curves file is absent,
    such as a committed result that keeps only its metrics, are skipped)."""
    frames = []
    for m in load_metrics(root):
        path = paths.Layout(Path(root)).curves_path(m["condition"], round_name(int(m["round"])))
        if path.is_file():
            frames.append(curves_frame(io.read_json(path), m))
    if not frames:
        return curves_frame({})
    return pd.concat(frames, ignore_index=True)


def as_runs(data: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A runs frame from either a runs frame or metrics dicts."""
    return data if isinstance(data, pd.DataFrame) else runs_frame(data)


# ---------------------------------------------------------------------- statistics


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
    data: pd.DataFrame | Iterable[Mapping[str, Any]],
    keys: Sequence[str] = (
        "early_stop_iteration",
        "test_accuracy_at_early_stop",
        "test_accuracy_at_stop",
        "val_accuracy_at_early_stop",
    ),
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
    data: pd.DataFrame | Iterable[Mapping[str, Any]],
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


def condition_series(
    data: pd.DataFrame | Iterable[Mapping[str, Any]], key: str, scale: float = 1.0
) -> dict[str, Series]:
    """condition -> Series of `key` (times `scale`), conditions in `CONDITIONS` order."""
    cells = cell_table(data, (key,))
    out: dict[str, Series] = {}
    for cond in ordered_conditions(cells["condition"]):
        c = cells[cells["condition"] == cond].sort_values("round")
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
