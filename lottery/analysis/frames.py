"""A study's metrics and curves files, read once, as dicts and as pandas DataFrames.

The one reader of a study's results files: `load_metrics` (the metrics files, in today's
schema: `lottery.analysis.legacy` maps older ones), `read_curves` (the curves files as
written), and the frames built from them: `runs_frame` / `load` (one row per trained
network) and `curves_frame` / `load_curves` (one row per network and evaluated iteration).
The stages name the files of their pipeline (`stages`); a kept study is read whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lottery.analysis import legacy
from lottery.analysis.censoring import is_censored
from lottery.analysis.legacy import STUDY_COLUMNS
from lottery.core import conditions, io, paths
from lottery.core.paths import round_name

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
CURVE_COLUMNS: tuple[str, ...] = (
    "train_loss",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
)
#: One stage that writes a metrics file: (condition, round name), e.g. ("reinit", "r03").
Stage = tuple[str, str]


def condition_rank(condition: str) -> tuple[int, str]:
    if condition in conditions.CONDITIONS:
        return conditions.CONDITIONS.index(condition), ""
    return len(conditions.CONDITIONS), condition


def ordered_conditions(names: Iterable[str]) -> list[str]:
    """`conditions.CONDITIONS` order first, then any others alphabetically."""
    return sorted(set(names), key=condition_rank)


# ------------------------------------------------------------------------ metrics


def runs_frame(
    metrics: Iterable[Mapping[str, Any]],
    defaults: Mapping[str, int] | None = None,
    window: int | None = None,
) -> pd.DataFrame:
    """One row per run of the given metrics files (normalised on the way); `censored`
    under `window` (`censoring.is_censored`).

    Rows are ordered by condition (`conditions.CONDITIONS` first), round, trial, repeat.
    Raises ValueError when two files hold the same (condition, round).
    """
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for raw in metrics:
        m = legacy.normalise(raw, defaults)
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


def load_metrics(root: str | Path, stages: Iterable[Stage] | None = None) -> list[dict[str, Any]]:
    """The metrics files of the study at `root`, normalised (an old file's settings come
    from `<root>/params.yaml`): those of `stages`, in that order (a missing one raises
    FileNotFoundError), or by default every file under `<root>/metrics/`, by path."""
    root = Path(root)
    lay = paths.Layout(root)
    files = metrics_files(root) if stages is None else [lay.metrics_path(*s) for s in stages]
    defaults = legacy.training_settings(root / "params.yaml")
    return [legacy.normalise(io.read_json(p), defaults) for p in files]


def load(root: str | Path = ".", window: int | None = None) -> pd.DataFrame:
    """One row per run of the study at `root` (see `lottery.analysis.results`)."""
    return runs_frame(load_metrics(root), window=window)


def as_runs(data: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A runs frame from either a runs frame or metrics dicts."""
    return data if isinstance(data, pd.DataFrame) else runs_frame(data)


# ------------------------------------------------------------------------- curves


def curves_frame(
    curves: Mapping[str, Any], metrics: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per (run, iteration) of one curves file.

    Validation and training metrics are on `iteration`; test metrics on their own grid
    (`legacy.tested_iterations`). Cells a run did not evaluate at that iteration are NaN.
    `metrics` (the same stage's metrics file) supplies trial and repeat.
    """
    run_info = (metrics or {}).get("runs") or {}
    frames = []
    for key, run in (curves.get("runs") or {}).items():
        base = pd.DataFrame({"iteration": [int(i) for i in run.get("iteration", [])]})
        for col in ("train_loss", "val_loss", "val_accuracy"):
            if col in run:
                base[col] = run[col]
        test = pd.DataFrame({"iteration": [int(i) for i in legacy.tested_iterations(run)]})
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


def read_curves(
    root: str | Path, metrics: Iterable[Mapping[str, Any]]
) -> dict[str, dict[int, dict[str, Any]]]:
    """condition -> round -> the curves file of each metrics file's stage, as written (the
    learning-curve figures draw these). A stage without a curves file (a kept result keeps
    only its metrics) is left out."""
    lay = paths.Layout(Path(root))
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for m in metrics:
        cond, rnd = str(m["condition"]), int(m["round"])
        path = lay.curves_path(cond, round_name(rnd))
        if path.is_file():
            out.setdefault(cond, {})[rnd] = io.read_json(path)
    return out


def load_curves(root: str | Path = ".", stages: Iterable[Stage] | None = None) -> pd.DataFrame:
    """Every learning curve of the study at `root` (of `stages`, or of every metrics file
    as `load_metrics` reads them), one `curves_frame` after another; stages whose curves
    file is absent are skipped."""
    metrics = load_metrics(root, stages)
    curves = read_curves(root, metrics)
    frames = [
        curves_frame(curves[m["condition"]][int(m["round"])], m)
        for m in metrics
        if int(m["round"]) in curves.get(m["condition"], {})
    ]
    if not frames:
        return curves_frame({})
    return pd.concat(frames, ignore_index=True)
