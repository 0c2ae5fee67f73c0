"""The study's figures of its metrics and curves, and `render_all`, which writes every
figure of the study (these and the mask figures of `lottery.report.mask_figures`).

Accuracy and early-stop iteration against % of weights remaining (the paper's Figure 4
style), one line per condition in the registry's colours (`lottery.core.conditions`), with
a min-max band over trial means; points of a (condition, round) with censored runs
(`lottery.analysis.results`) are drawn hollow. The learning curves show test accuracy
during training for the rounds nearest the paper's Figure 3 levels. Accuracies are
fractions in the metrics files and percentages on the figures. Sizes and writing:
`lottery.report.canvas`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from lottery.analysis import results
from lottery.core.arch import Architecture
from lottery.core.conditions import REGISTRY, TICKET
from lottery.report.canvas import LINE_FIGSIZE, fmt_percent, new_figure, no_data, save_figure
from lottery.report.mask_figures import (
    Mask,
    densities_from_masks,
    layer_density_by_round,
    mask_figures,
)

#: % remaining the learning-curve figure tries to show (the paper's Figure 3 levels).
DEFAULT_CURVE_TARGETS: tuple[float, ...] = (100.0, 51.0, 21.0, 7.0, 3.6)


# ------------------------------------------------------------------- metrics series


def _thin(values: list[float], max_ticks: int = 10) -> list[float]:
    """Keep at most `max_ticks` values, always keeping the first and the last."""
    if len(values) <= max_ticks:
        return values
    idx = np.unique(np.linspace(0, len(values) - 1, max_ticks).round().astype(int))
    return [values[i] for i in idx]


def _percent_axis(ax: Axes, xs: Iterable[float]) -> None:
    """Log-scaled, reversed x axis (100% on the left), ticks at the levels present."""
    levels = sorted({float(x) for x in xs if x > 0}, reverse=True)
    ax.set_xscale("log")
    if levels:
        ax.set_xlim(levels[0] * 1.15, levels[-1] / 1.15)  # reversed: large on the left
        ax.xaxis.set_major_locator(FixedLocator(_thin(levels)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_percent(v)))
    else:
        ax.invert_xaxis()
    ax.set_xlabel("% of weights remaining (log scale)")


#: Legend entry of the hollow markers.
CENSORED_LABEL = "hollow marker: some runs censored (lower bound / may be understated)"


def _draw_series(ax: Axes, s: results.Series) -> None:
    """The mean line (filled markers), hollow markers where runs are censored, the band."""
    known = REGISTRY.get(s.condition)  # an unknown condition: matplotlib's next colour
    color = known.colour if known else None
    censored = [i for i, n in enumerate(s.n_censored) if n > 0]
    ax.plot(
        s.percent_remaining,
        s.mean,
        marker="o",
        markersize=4,
        markevery=[i for i in range(len(s.mean)) if i not in censored],
        color=color,
        label=known.legend if known else s.condition,
    )
    if censored:
        ax.plot(
            [s.percent_remaining[i] for i in censored],
            [s.mean[i] for i in censored],
            linestyle="none",
            marker="o",
            markersize=7,
            markerfacecolor="white",
            markeredgecolor=color,
            label="_censored",
        )
    if s.has_band:
        ax.fill_between(s.percent_remaining, s.low, s.high, color=color, alpha=0.2, linewidth=0)


def series_figure(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
    key: str,
    ylabel: str,
    title: str,
    scale: float = 1.0,
) -> Figure:
    """Mean of `key` vs % remaining, one line per condition, min-max band over trial means;
    hollow markers where a point has censored runs."""
    fig, ax = new_figure(LINE_FIGSIZE)
    series = results.condition_series(data, key, scale)
    if not series:
        no_data(ax, "metrics")
        return fig
    for s in series.values():
        _draw_series(ax, s)
    _percent_axis(ax, (x for s in series.values() for x in s.percent_remaining))
    ax.set_ylabel(ylabel)
    runs = sorted({n for s in series.values() for n in s.n_runs})
    band = (
        "mean; band: min-max over trial means"
        if any(s.has_band for s in series.values())
        else "one run"
    )
    ax.set_title(f"{title}\n({band}; runs per point: {', '.join(map(str, runs))})")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if any(n > 0 for s in series.values() for n in s.n_censored):
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=7,
                markerfacecolor="white",
                markeredgecolor="black",
            )
        )
        labels.append(CENSORED_LABEL)
    ax.legend(handles, labels)
    return fig


def accuracy_figure(metrics: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy at early stop (%) vs % remaining, one line per condition."""
    return series_figure(
        metrics,
        "test_accuracy_at_early_stop",
        "test accuracy at early stop (%)",
        "Test accuracy at the early-stop iteration",
        scale=100.0,
    )


def end_accuracy_figure(metrics: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy (%) where training ended vs % remaining, one line per condition: the
    horizon for the networks whose weights are pruned, or where patience stopped a control."""
    return series_figure(
        metrics,
        "test_accuracy_at_stop",
        "test accuracy at the end of training (%)",
        "Test accuracy at the end of training",
        scale=100.0,
    )


def early_stop_figure(metrics: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Figure:
    """Early-stop iteration vs % remaining, one line per condition."""
    return series_figure(
        metrics,
        "early_stop_iteration",
        "early-stop iteration",
        "Early-stop iteration (minimum validation loss)",
    )


def accuracy_vs_remaining(
    metrics: pd.DataFrame | Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    """Test accuracy at early stop vs % weights remaining (the paper's Figure 4 style)."""
    return save_figure(accuracy_figure(metrics), path)


def end_accuracy_vs_remaining(
    metrics: pd.DataFrame | Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    """Test accuracy at the end of training vs % weights remaining."""
    return save_figure(end_accuracy_figure(metrics), path)


def early_stop_vs_remaining(
    metrics: pd.DataFrame | Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    """Early-stop iteration vs % weights remaining, one line per condition."""
    return save_figure(early_stop_figure(metrics), path)


# ------------------------------------------------------------------- learning curves


def choose_rounds(
    percent_by_round: Mapping[int, float], targets: Sequence[float] = DEFAULT_CURVE_TARGETS
) -> list[int]:
    """For each target % remaining, the round closest to it (ties: the earlier round).

    Returns the distinct rounds, sorted; empty when no round is available.
    """
    if not percent_by_round:
        return []
    chosen = {
        min(percent_by_round, key=lambda r: (abs(float(percent_by_round[r]) - t), r))
        for t in targets
    }
    return sorted(chosen)


def curve_band(
    curves: Mapping[str, Any], key: str = "test_accuracy"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(iterations, mean, min, max, n_runs) of `key` over the runs of one curves dict.

    Test metrics are plotted against `test_iteration` (their own, sparser grid) when the
    curves have it, everything else against `iteration`. Only iterations every run
    evaluated are used, so runs of different length align.
    """
    runs = [r for r in (curves.get("runs") or {}).values() if r.get(key)]
    if not runs:
        empty = np.zeros(0)
        return empty, empty, empty, empty, 0

    def grid(run: Mapping[str, Any]) -> list[int]:
        x = "test_iteration" if key.startswith("test_") and "test_iteration" in run else "iteration"
        return [int(i) for i in run[x]]

    common = set.intersection(*(set(grid(r)) for r in runs))
    its = np.array(sorted(common), dtype=np.int64)
    table = np.array(
        [[dict(zip(grid(r), r[key], strict=True))[i] for i in its] for r in runs],
        dtype=np.float64,
    )
    return its, table.mean(axis=0), table.min(axis=0), table.max(axis=0), len(runs)


def learning_curves_figure(
    curves: Mapping[int, Mapping[str, Any]],
    metrics_by_round: Mapping[int, Mapping[str, Any]],
    condition: str = TICKET.name,
    targets: Sequence[float] = DEFAULT_CURVE_TARGETS,
) -> Figure:
    """Test accuracy vs iteration of `condition`'s rounds nearest `targets` (% remaining)."""
    fig, ax = new_figure(LINE_FIGSIZE)
    percent = {
        int(r): float(metrics_by_round[r]["percent_remaining"])
        for r in curves
        if r in metrics_by_round
    }
    rounds = choose_rounds(percent, targets)
    drawn = 0
    for i, rnd in enumerate(rounds):
        its, mean, low, high, runs = curve_band(curves[rnd])
        if runs == 0 or its.size == 0:
            continue
        color = f"C{i % 10}"
        ax.plot(
            its,
            100.0 * mean,
            color=color,
            label=f"{fmt_percent(percent[rnd])}% remaining (round {rnd})",
        )
        if runs > 1:
            ax.fill_between(its, 100.0 * low, 100.0 * high, color=color, alpha=0.2, linewidth=0)
        drawn += 1
    if drawn == 0:
        no_data(ax, f"{condition} learning curves")
        return fig
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Test accuracy during training ({condition}; mean, band: min-max over runs)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def learning_curves(
    curves: Mapping[int, Mapping[str, Any]],
    metrics_by_round: Mapping[int, Mapping[str, Any]],
    path: str | Path,
    condition: str = TICKET.name,
) -> Path:
    """Test accuracy vs iteration for the rounds `choose_rounds` picks (round -> curves dict)."""
    return save_figure(learning_curves_figure(curves, metrics_by_round, condition), path)


# ------------------------------------------------------------------------ all at once


#: Names (also the file stems under out_dir) of the figures `render_all` always writes.
SUMMARY_FIGURES: tuple[str, ...] = (
    "accuracy_vs_remaining",
    "end_accuracy_vs_remaining",
    "early_stop_vs_remaining",
    "learning_curves",
    "density_by_round",
)


def metric_figures(
    metrics: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    densities: Mapping[int, Mapping[str, float]] | None = None,
) -> dict[str, Path]:
    """The figures drawn from the metrics files alone: accuracy (at the early stop and at
    the end of training) and early stop vs % remaining, and the layer densities
    (`densities` from the masks, where given, over the ticket metrics' `density`)."""
    out_dir = Path(out_dir)
    runs = results.runs_frame(metrics)
    dens: dict[int, Mapping[str, float]] = {
        int(m["round"]): dict(m["density"])
        for m in metrics
        if m["condition"] == TICKET.name and m.get("density")
    }
    dens.update(densities or {})
    return {
        "accuracy_vs_remaining": accuracy_vs_remaining(runs, out_dir / "accuracy_vs_remaining.png"),
        "end_accuracy_vs_remaining": end_accuracy_vs_remaining(
            runs, out_dir / "end_accuracy_vs_remaining.png"
        ),
        "early_stop_vs_remaining": early_stop_vs_remaining(
            runs, out_dir / "early_stop_vs_remaining.png"
        ),
        "density_by_round": layer_density_by_round(dens, out_dir / "density_by_round.png"),
    }


def render_all(
    masks_by_round: Mapping[int, Mapping[int, Mask]],
    metrics: Sequence[Mapping[str, Any]],
    curves: Mapping[str, Mapping[int, Mapping[str, Any]]],
    out_dir: str | Path,
    arch: Architecture,
) -> dict[str, Path]:
    """Every figure of the study, under `out_dir`; returns name -> path (name + ".png").

    The four summary figures are always written (with "no data" when empty), so they can
    be declared as stage outputs. Mask figures (`mask_figures`, for network `arch`) use the
    lowest trial id of each round. Layer densities come from the masks (mean over trials),
    falling back to the ticket metrics' `density` for rounds without masks.
    """
    out_dir = Path(out_dir)
    ticket = {int(m["round"]): m for m in metrics if m["condition"] == TICKET.name}
    out = metric_figures(metrics, out_dir, densities_from_masks(masks_by_round))
    out["learning_curves"] = learning_curves(
        curves.get(TICKET.name, {}), ticket, out_dir / "learning_curves.png"
    )
    for rnd in sorted(masks_by_round):
        trials = masks_by_round[rnd]
        if not trials:
            continue
        trial = min(trials)
        out.update(mask_figures(trials[trial], rnd, trial, arch, out_dir))
    return out
