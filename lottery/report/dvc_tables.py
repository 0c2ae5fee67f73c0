"""The report stage's tables for DVC: summary.json (`dvc metrics`), statistics.json (the
detail behind it, an output) and the flat tables `dvc plots` draws (plots/*.json).

Accuracies are fractions and differences of accuracies pp, as in the metrics files;
intervals are null with fewer than 3 trials. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lottery.analysis import results, statistics
from lottery.analysis.inference import (
    ACC,
    ACC_STOP,
    ALPHA,
    CLEAR_SHARE,
    ES,
    VAL_ACC,
    Cell,
    Pick,
    Summary,
    gap_sign,
)
from lottery.analysis.results import Difference, Stats
from lottery.core import io
from lottery.core.conditions import CONDITIONS, CONTROLS, TICKET
from lottery.core.paths import round_name

#: Beside summary.json: the per-cell statistics and differences (`statistics_json`).
STATISTICS_FILE = "statistics.json"


# ------------------------------------------------------ summary.json, statistics.json


def _stats_json(s: Stats, scale: float = 1.0) -> dict[str, float | None]:
    t = s.scaled(scale)
    return {"mean": t.mean, "min": t.min, "max": t.max, "ci_low": t.ci_low, "ci_high": t.ci_high}


def difference_json(d: Difference | None, p: bool = False) -> dict[str, Any] | None:
    """A difference's numbers (with its t-test's p when `p`)."""
    if d is None:
        return None
    out: dict[str, Any] = {
        "mean": d.mean,
        "ci_low": d.ci_low,
        "ci_high": d.ci_high,
        "n_trials": d.n_trials,
    }
    if p:
        out["p_value"] = d.p_value
    return out


def cell_json(c: Cell) -> dict[str, Any]:
    """One (condition, round)'s statistics for statistics.json (accuracies in %)."""
    return {
        "percent_remaining": c.percent_remaining,
        "n_runs": c.n_runs,
        "n_trials": c.n_trials,
        "n_censored": c.n_censored,
        ES: _stats_json(c.early_stop),
        ACC: _stats_json(c.accuracy, 100.0),  # accuracies in %, as everywhere
        ACC_STOP: _stats_json(c.accuracy_at_stop, 100.0),
        VAL_ACC: _stats_json(c.val_accuracy, 100.0),
    }


def _gap_json(d: Difference | None) -> dict[str, float | None] | None:
    """A difference (pp, or iterations) with its 95% interval (null bounds below 3 trials)."""
    return None if d is None else {"mean": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high}


def summary_json(s: Summary) -> dict[str, Any]:
    """The report's headline facts for `dvc metrics` and `dvc exp show`: about 20 columns,
    accuracies in % and their differences in pp, as in the report, in reading order (the
    order `dvc exp show` shows them in; write it unsorted).

    Per-(condition, round) detail is not a metric (a column per cell made `dvc exp show`
    unreadable): it is in statistics.json and the `dvc plots` tables."""
    out: dict[str, Any] = {}
    if s.dense is not None:
        out["trials"] = s.dense.n_trials
        out["dense_test_accuracy_pct"] = 100.0 * s.dense.accuracy.mean
        out["dense_early_stop_iteration"] = s.dense.early_stop.mean
    f = s.floor
    out["sparsest_matching_remaining_pct"] = f.ticket.percent_remaining if f else None
    out["sparsest_matching_round"] = f.ticket.round if f else None
    out["sparsest_matching_gain_pp"] = _gap_json(f.vs_dense) if f else None
    if s.earliest is not None:
        e = s.earliest
        out["earliest_stop_round"] = e.ticket.round
        out["earliest_stop_iteration"] = e.ticket.early_stop.mean
        out["earliest_stop_speedup_vs_dense"] = e.factor_vs_dense
        out["earliest_stop_dense_minus_ticket"] = _gap_json(e.vs_dense)
    if s.best is not None:
        b = s.best
        out["best_ticket_round"] = b.ticket.round
        out["best_ticket_test_accuracy_pct"] = 100.0 * b.ticket.accuracy.mean
        out["best_ticket_gain_pp"] = _gap_json(b.vs_dense)
    out["runs"] = s.n_runs
    out["censored_runs"] = s.n_censored
    return out


def pick_json(p: Pick) -> dict[str, Any]:
    """A pick (earliest stop, best ticket) with its runner-up, margin and shares."""
    return {
        "round": p.ticket.round,
        "tied_rounds": list(p.tied_rounds),
        "runner_up_round": None if p.runner_up is None else p.runner_up.round,
        "margin": p.margin,
        "share": p.share,
        "clear": p.clear,
        "shares": None if p.shares is None else {round_name(r): v for r, v in p.shares.items()},
    }


def statistics_json(s: Summary, all_cells: Sequence[Cell]) -> dict[str, Any]:
    """Every cell's statistics (mean, min-max, 95% interval over trial means, censored
    runs), the match verdicts, the picks with their margins and bootstrap shares, and
    every ticket − control difference with its Holm-adjusted p: the detail behind
    summary.json, an output, not a metric."""
    gaps: dict[str, dict[str, Any]] = {}
    for g in s.gaps:
        gaps.setdefault(g.control.condition, {})[round_name(g.round)] = {
            **(difference_json(g.difference, p=True) or {}),
            "p_holm": g.p_holm,
            "family": g.family,
            "sign": gap_sign(g),
        }
    return {
        "method": {
            "interval": statistics.METHOD,
            "confidence": statistics.CONFIDENCE,
            "censoring_window": s.window.iterations,
            "match_margin_pp": s.margin_pp,
            "holm_alpha": ALPHA,
            "clear_pick_share": CLEAR_SHARE,
        },
        "cells": {
            cond: {round_name(c.round): cell_json(c) for c in all_cells if c.condition == cond}
            for cond in dict.fromkeys(c.condition for c in all_cells)
        },
        "match_vs_dense_pp": {
            round_name(m.round): {
                **(difference_json(m.vs_dense, p=True) or {}),
                "verdict": m.verdict,
            }
            for m in s.matches
        },
        "picks": {
            name: pick_json(x.pick)
            for name, x in (("earliest_stop", s.earliest), ("best_ticket", s.best))
            if x is not None
        },
        "ticket_minus_control_pp": gaps,
    }


# ------------------------------------------------------------------------ dvc plots


#: dvc plots field -> runs column (the field names dvc.yaml's `plots` refer to).
DVC_PLOT_FIELDS: dict[str, str] = {
    "test_accuracy": "test_accuracy_at_early_stop",
    "test_accuracy_at_stop": "test_accuracy_at_stop",
    "early_stop_iteration": "early_stop_iteration",
}
#: Accuracies are written in %, as everywhere else (the runs hold fractions).
PERCENT_COLUMNS = frozenset(
    {"test_accuracy_at_early_stop", "test_accuracy_at_stop", "val_accuracy"}
)


def _dvc_row(cell: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        k: cell[k]
        for k in ("condition", "round", "percent_remaining", "n_runs", "n_trials", "n_censored")
    }
    for name, key in DVC_PLOT_FIELDS.items():
        s = results.cell_stats(cell, key).scaled(100.0 if key in PERCENT_COLUMNS else 1.0)
        row[name] = s.mean
        row.update({f"{name}_{stat}": getattr(s, stat) for stat in results.STAT_NAMES[1:]})
    return row


def dvc_plot_rows(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """Flat rows for `dvc plots`: one file per condition, `accuracy_{condition}.json`.

    One file per condition because DVC draws one line per file (and revision). Each row:
    condition, round, percent_remaining, n_runs, n_trials, n_censored and, for each field of
    `DVC_PLOT_FIELDS`, the mean (plain name) and `<name>_min`, `_max`, `_ci_low`, `_ci_high`
    (accuracies in %), all over trial means (a 95% Student-t interval, null with fewer than
    3 trials). Control rows (`CONTROLS`) add `ticket_minus_control_pp` (test accuracy at
    early stop, paired by trial) with its `_ci_low` / `_ci_high`. Rows are ordered by round.
    Every condition of `CONDITIONS` gets its file, `[]` when the study does not run it (a
    control switched off): dvc.yaml declares all of them, and `dvc plots` warns about a
    missing file but not about an empty one.
    """
    runs = results.as_runs(data)
    cells = results.cell_table(runs, tuple(DVC_PLOT_FIELDS.values()))
    out: dict[str, list[dict[str, Any]]] = {f"accuracy_{c}.json": [] for c in CONDITIONS}
    for cond in results.ordered_conditions(cells["condition"]):
        rows = []
        for cell in cells[cells["condition"] == cond].sort_values("round").to_dict("records"):
            row = _dvc_row(cell)
            if cond in CONTROLS:
                d = results.paired_difference(
                    runs,
                    "test_accuracy_at_early_stop",
                    (TICKET.name, int(cell["round"])),
                    (cond, int(cell["round"])),
                    scale=100.0,
                )
                row["ticket_minus_control_pp"] = None if d is None else d.mean
                row["ticket_minus_control_pp_ci_low"] = None if d is None else d.ci_low
                row["ticket_minus_control_pp_ci_high"] = None if d is None else d.ci_high
            rows.append(row)
        out[f"accuracy_{cond}.json"] = rows
    return out


#: The learning-curve columns drawn by `dvc plots` (dvc.yaml), present at every evaluation.
DVC_CURVE_FIELDS: tuple[str, ...] = ("train_loss", "val_loss", "val_accuracy")
#: At most this many evaluations per (condition, round) in the curves table.
DVC_CURVE_POINTS = 100


def dvc_curve_rows(curves: pd.DataFrame, runs: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The learning curves as one flat table for `dvc plots`: `curves.json`.

    `curves` is `results.curves_frame` of the study's stages, `runs` its runs frame. One
    row per (condition, round, evaluated iteration): `percent_remaining` (the round's
    mean), `n_runs` (the runs evaluated there: fewer once patience stops some) and the
    mean of each `DVC_CURVE_FIELDS` over them (accuracy in %). At most `DVC_CURVE_POINTS`
    evaluations per round, evenly strided and always the last, so that long studies keep a
    small table. Rows are ordered by condition, round and iteration. (The test curve is left out: it
    is sparser, evaluated where a number needs it, so its mean over runs would zigzag.)
    """
    fields = list(DVC_CURVE_FIELDS)
    curves = curves.dropna(subset=["val_loss"])
    percent = runs.groupby(["condition", "round"])["percent_remaining"].mean()
    rows: list[dict[str, Any]] = []
    for cond in results.ordered_conditions(curves["condition"]):
        per_cond = curves[curves["condition"] == cond]
        for rnd, cell in per_cond.groupby("round", sort=True):
            grouped = cell.groupby("iteration", sort=True)
            means, counts = grouped[fields].mean(), grouped["val_loss"].count()
            its = list(means.index)
            stride = (len(its) + DVC_CURVE_POINTS - 1) // DVC_CURVE_POINTS
            keep = set(its[::stride]) | {its[-1]}
            for it in its:
                if it not in keep:
                    continue
                row: dict[str, Any] = {
                    "condition": cond,
                    "round": int(rnd),
                    "percent_remaining": float(percent[(cond, rnd)]),
                    "iteration": int(it),
                    "n_runs": int(counts[it]),
                }
                row.update(
                    {
                        f: (100.0 if f in PERCENT_COLUMNS else 1.0) * float(means.at[it, f])
                        for f in fields
                    }
                )
                rows.append(row)
    return {"curves.json": rows}


def write_dvc_plot_tables(
    rows_by_name: Mapping[str, Sequence[Mapping[str, Any]]], out_dir: str | Path
) -> dict[str, Path]:
    """Write each table as a JSON list of flat objects (what `dvc plots` reads)."""
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for name, rows in rows_by_name.items():
        if not name.endswith(".json"):
            raise ValueError(f"dvc plot tables are JSON lists; {name!r} must end in .json")
        path = out_dir / name
        io.write_json(path, [dict(r) for r in rows])
        paths[name] = path
    return paths
