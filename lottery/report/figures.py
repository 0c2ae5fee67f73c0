"""Figures for the study, and the flat tables `dvc plots` draws from.

Every figure is a `matplotlib.figure.Figure` with its own Agg canvas (no pyplot state,
so nothing needs closing and nothing leaks; importing this module leaves the process's
matplotlib backend alone, so a notebook keeps its own), rendered headless, written
into memory and then onto disk with `io.atomic_open`: an interrupted stage never leaves
a half-written PNG. Sizes are fixed, so the pixel size of every file is known:

==========================  ==================  =====================
figure                      figsize (inches)    pixels at `DPI` = 100
==========================  ==================  =====================
line plots                  `LINE_FIGSIZE`      800 x 500
first-layer mask image      `MASK_FIGSIZE`      600 x 1000
28x28 pixel connection map  `PIXEL_FIGSIZE`     600 x 500
conv layer mask map         `CONV_FIGSIZE`      800 x 600
==========================  ==================  =====================

Mask figures follow the network (`render_all`'s `arch`): every conv layer gets a map of the
fraction of each 3x3 kernel kept per (input, output) channel pair; a dense first layer (an
`mlp`) gets its inputs x hidden units mask, and, where it sees the pixels of a one-channel
image (`Architecture.first_layer_sees_pixels`), the map of connections kept per pixel.

Accuracies are fractions in the metrics files and percentages on the figures. Points
of a (condition, round) with censored runs (`lottery.results`) are drawn hollow.
The statistics come from `lottery.results`.
"""

from __future__ import annotations

import io as _bytes_io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from lottery.analysis import results
from lottery.core import io, paths
from lottery.core.arch import LENET, Architecture

#: Resolution of every PNG (dots per inch).
DPI = 100
#: Accuracy / early-stop / density / learning-curve plots: 800 x 500 px.
LINE_FIGSIZE: tuple[float, float] = (8.0, 5.0)
#: The 784 x 300 first-layer mask: tall, so each input pixel row gets ~1 px: 600 x 1000 px.
MASK_FIGSIZE: tuple[float, float] = (6.0, 10.0)
#: The 28 x 28 map of connections kept per input pixel: 600 x 500 px.
PIXEL_FIGSIZE: tuple[float, float] = (6.0, 5.0)
#: A conv layer's (input channel x output channel) map of kernel densities: 800 x 600 px.
CONV_FIGSIZE: tuple[float, float] = (8.0, 6.0)

#: Side of the square MNIST image; fc1 has IMAGE_SIDE**2 inputs.
IMAGE_SIDE = 28
CONDITION_LABELS: dict[str, str] = {
    "ticket": "winning ticket (original init)",
    "reinit": "reinit control (same mask, fresh init)",
    "random": "random-prune control (same densities)",
}
CONDITION_COLORS: dict[str, str] = {"ticket": "C0", "reinit": "C1", "random": "C2"}
#: % remaining the learning-curve figure tries to show (the paper's Figure 3 levels).
DEFAULT_CURVE_TARGETS: tuple[float, ...] = (100.0, 51.0, 21.0, 7.0, 3.6)
#: Colours of the first-layer mask image.
PRUNED_COLOR = "#eeeeee"
KEPT_COLOR = "#1f4e79"

Mask = Mapping[str, np.ndarray]


# --------------------------------------------------------------------------- writing


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render `fig` to PNG in memory, then write it atomically to `path`."""
    path = Path(path)
    buf = _bytes_io.BytesIO()
    # No "Software" metadata: the bytes then depend only on what is drawn.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    with io.atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


def _new_figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # this figure's own canvas: no global backend is touched
    return fig, fig.add_subplot()


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no data: {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------------------ masks


def _binary(mask: np.ndarray, what: str) -> np.ndarray:
    if mask.dtype != np.bool_:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{what} must hold only 0/1 (kept/pruned) values")
        mask = mask.astype(bool)
    return mask


def _check_fc1(fc1_mask: np.ndarray, n_inputs: int | None = IMAGE_SIDE * IMAGE_SIDE) -> np.ndarray:
    """A dense first-layer mask (n_inputs, n_hidden) as bool; any n_inputs when None."""
    mask = np.asarray(fc1_mask)
    if mask.ndim != 2 or (n_inputs is not None and mask.shape[0] != n_inputs):
        rows = "n_inputs" if n_inputs is None else n_inputs
        raise ValueError(f"first-layer mask must have shape ({rows}, n_hidden), got {mask.shape}")
    return _binary(mask, "first-layer mask")


def pixel_counts(
    fc1_mask: np.ndarray, image_side: tuple[int, int] = (IMAGE_SIDE, IMAGE_SIDE)
) -> np.ndarray:
    """Connections kept per input pixel of a one-channel image, as an (H, W) int array
    (row-major, like MNIST; 28x28 by default)."""
    mask = _check_fc1(fc1_mask, image_side[0] * image_side[1])
    return mask.sum(axis=1, dtype=np.int64).reshape(image_side)


def first_layer_mask_figure(fc1_mask: np.ndarray, title: str) -> Figure:
    mask = _check_fc1(fc1_mask, None)
    kept = int(mask.sum())
    fig, ax = _new_figure(MASK_FIGSIZE)
    cmap = ListedColormap([PRUNED_COLOR, KEPT_COLOR])
    ax.imshow(
        mask.astype(np.uint8), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest"
    )
    ax.set_xlabel(f"hidden unit (fc1 output, {mask.shape[1]})")
    ax.set_ylabel(f"input pixel (row-major index, {mask.shape[0]})")
    ax.set_title(title)
    handles = [
        Patch(
            facecolor=KEPT_COLOR,
            edgecolor="black",
            label=f"kept ({kept:,}, {100.0 * kept / mask.size:.1f}%)",
        ),
        Patch(facecolor=PRUNED_COLOR, edgecolor="black", label=f"pruned ({mask.size - kept:,})"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=2)
    return fig


def first_layer_mask_image(fc1_mask: np.ndarray, path: str | Path, title: str) -> Path:
    """The 784x300 first-layer mask: input pixels (rows) x hidden units (columns)."""
    return save_figure(first_layer_mask_figure(fc1_mask, title), path)


def pixel_connection_figure(
    fc1_mask: np.ndarray, title: str, image_side: tuple[int, int] = (IMAGE_SIDE, IMAGE_SIDE)
) -> Figure:
    counts = pixel_counts(fc1_mask, image_side)
    n_hidden = np.asarray(fc1_mask).shape[1]
    fig, ax = _new_figure(PIXEL_FIGSIZE)
    image = ax.imshow(
        counts, cmap="viridis", vmin=0, vmax=max(int(counts.max()), 1), interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, label=f"connections kept (of {n_hidden})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def pixel_connection_map(
    fc1_mask: np.ndarray,
    path: str | Path,
    title: str,
    image_side: tuple[int, int] = (IMAGE_SIDE, IMAGE_SIDE),
) -> Path:
    """28x28 (or `image_side`) heat map of how many fc1 connections each input pixel keeps."""
    return save_figure(pixel_connection_figure(fc1_mask, title, image_side), path)


def conv_channel_density(kernel_mask: np.ndarray) -> np.ndarray:
    """(c_in, c_out): the fraction of each (kh, kw) kernel kept, per channel pair, of a conv
    layer's mask (kh, kw, c_in, c_out)."""
    mask = np.asarray(kernel_mask)
    if mask.ndim != 4:
        raise ValueError(f"a conv mask must have shape (kh, kw, c_in, c_out), got {mask.shape}")
    return _binary(mask, "conv mask").mean(axis=(0, 1))


def conv_mask_figure(kernel_mask: np.ndarray, layer: str, title: str) -> Figure:
    dens = conv_channel_density(kernel_mask)
    kh, kw, c_in, c_out = np.shape(kernel_mask)
    fig, ax = _new_figure(CONV_FIGSIZE)
    image = ax.imshow(
        dens, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, label=f"fraction of the {kh}×{kw} kernel kept")
    ax.set_xlabel(f"output channel of {layer} ({c_out})")
    ax.set_ylabel(f"input channel ({c_in})")
    for axis, n in ((ax.xaxis, c_out), (ax.yaxis, c_in)):  # channel numbers, whole only
        axis.set_major_locator(
            FixedLocator(list(range(n))) if n <= 16 else MaxNLocator(integer=True)
        )
    ax.set_title(title)
    return fig


def conv_mask_image(kernel_mask: np.ndarray, path: str | Path, layer: str, title: str) -> Path:
    """A conv layer's mask as an (input channel x output channel) map of kernel densities."""
    return save_figure(conv_mask_figure(kernel_mask, layer, title), path)


def mask_densities(mask: Mask) -> dict[str, float]:
    """Fraction kept per layer and overall (kept / total over the layers present)."""
    out: dict[str, float] = {}
    kept = total = 0
    for layer in _ordered_layers(mask):
        arr = np.asarray(mask[layer])
        out[layer] = float(arr.sum()) / arr.size
        kept += int(arr.sum())
        total += arr.size
    out["overall"] = kept / total if total else float("nan")
    return out


def densities_from_masks(
    masks_by_round: Mapping[int, Mapping[int, Mask]],
) -> dict[int, dict[str, float]]:
    """round -> {layer: density, "overall": density}, the mean over the trials' masks."""
    out: dict[int, dict[str, float]] = {}
    for rnd in sorted(masks_by_round):
        per_trial = [mask_densities(m) for m in masks_by_round[rnd].values()]
        if not per_trial:
            continue
        keys = list(per_trial[0])
        out[rnd] = {k: float(np.mean([d[k] for d in per_trial])) for k in keys}
    return out


def _ordered_layers(names: Iterable[str]) -> list[str]:
    """Layer names in the order given (masks and densities hold them in forward order)."""
    return list(dict.fromkeys(names))


def density_by_round_figure(densities: Mapping[int, Mapping[str, float]]) -> Figure:
    fig, ax = _new_figure(LINE_FIGSIZE)
    rounds = sorted(densities)
    if not rounds:
        _no_data(ax, "densities")
        return fig
    keys: list[str] = []
    for rnd in rounds:
        keys.extend(k for k in densities[rnd] if k not in keys)
    series = _ordered_layers(k for k in keys if k != "overall")
    if "overall" in keys:
        series.append("overall")
    for i, key in enumerate(series):
        xs = [r for r in rounds if key in densities[r]]
        ys = [100.0 * float(densities[r][key]) for r in xs]
        if key == "overall":
            ax.plot(xs, ys, marker=".", label=key, color="black", linestyle="--")
        else:  # distinct markers, shrinking, so equal-density layers stay visible
            ax.plot(xs, ys, marker="osD^v"[i % 5], markersize=8 - 1.5 * (i % 3), label=key)
    ax.set_yscale("log")
    ax.set_xlabel("pruning round")
    ax.set_ylabel("% of weights remaining (log scale)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    positive = [100.0 * float(d[k]) for d in densities.values() for k in d if d[k] > 0]
    yticks = _nice_log_ticks(min(positive, default=1.0))
    ax.yaxis.set_major_locator(FixedLocator(yticks))
    ax.set_ylim(yticks[0] / 1.1, 100.0 * 1.1)
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _fmt_percent(v)))
    ax.set_title("Density of each layer by pruning round")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def layer_density_by_round(densities: Mapping[int, Mapping[str, float]], path: str | Path) -> Path:
    """Density (fraction kept, plotted as %) of each layer and overall vs round; log y."""
    return save_figure(density_by_round_figure(densities), path)


# ------------------------------------------------------------------- metrics series


def _fmt_percent(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def _nice_log_ticks(lowest: float, highest: float = 100.0) -> list[float]:
    """1-2-5 ticks from just below `lowest` up to `highest` (percent)."""
    ticks = [m * 10.0**e for e in range(-4, 3) for m in (1, 2, 5)]
    below = [t for t in ticks if t <= lowest]
    start = below[-1] if below else ticks[0]
    return [t for t in ticks if start <= t <= highest]


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
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _fmt_percent(v)))
    else:
        ax.invert_xaxis()
    ax.set_xlabel("% of weights remaining (log scale)")


#: Legend entry of the hollow markers.
CENSORED_LABEL = "hollow marker: some runs censored (lower bound / may be understated)"


def _draw_series(ax: Axes, s: results.Series) -> None:
    """The mean line (filled markers), hollow markers where runs are censored, the band."""
    color = CONDITION_COLORS.get(s.condition)
    censored = [i for i, n in enumerate(s.n_censored) if n > 0]
    ax.plot(
        s.percent_remaining,
        s.mean,
        marker="o",
        markersize=4,
        markevery=[i for i in range(len(s.mean)) if i not in censored],
        color=color,
        label=CONDITION_LABELS.get(s.condition, s.condition),
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
    fig, ax = _new_figure(LINE_FIGSIZE)
    series = results.condition_series(data, key, scale)
    if not series:
        _no_data(ax, "metrics")
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
    return series_figure(
        metrics,
        "test_accuracy_at_early_stop",
        "test accuracy at early stop (%)",
        "Test accuracy at the early-stop iteration",
        scale=100.0,
    )


def early_stop_figure(metrics: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Figure:
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
    condition: str = "ticket",
    targets: Sequence[float] = DEFAULT_CURVE_TARGETS,
) -> Figure:
    fig, ax = _new_figure(LINE_FIGSIZE)
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
            label=f"{_fmt_percent(percent[rnd])}% remaining (round {rnd})",
        )
        if runs > 1:
            ax.fill_between(its, 100.0 * low, 100.0 * high, color=color, alpha=0.2, linewidth=0)
        drawn += 1
    if drawn == 0:
        _no_data(ax, f"{condition} learning curves")
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
    condition: str = "ticket",
) -> Path:
    """Test accuracy vs iteration for the rounds `choose_rounds` picks (round -> curves dict)."""
    return save_figure(learning_curves_figure(curves, metrics_by_round, condition), path)


# ------------------------------------------------------------------------ dvc plots


#: dvc plots field -> runs column (the field names dvc.yaml's `plots` refer to).
DVC_PLOT_FIELDS: dict[str, str] = {
    "test_accuracy": "test_accuracy_at_early_stop",
    "test_accuracy_at_stop": "test_accuracy_at_stop",
    "early_stop_iteration": "early_stop_iteration",
}


def _dvc_row(cell: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        k: cell[k]
        for k in ("condition", "round", "percent_remaining", "n_runs", "n_trials", "n_censored")
    }
    for name, key in DVC_PLOT_FIELDS.items():
        s = results.cell_stats(cell, key)
        row[name] = s.mean
        row.update({f"{name}_{stat}": getattr(s, stat) for stat in results.STAT_NAMES[1:]})
    return row


def dvc_plot_rows(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """Flat rows for `dvc plots`: one file per condition, `accuracy_{condition}.json`.

    One file per condition because DVC draws one line per file (and revision). Each row:
    condition, round, percent_remaining, n_runs, n_trials, n_censored and, for each field
    of `DVC_PLOT_FIELDS`, the mean (plain name) and `<name>_min`, `_max`, `_ci_low`,
    `_ci_high`, all over trial means (a 95% Student-t interval, null with fewer than 3
    trials). Control rows add `ticket_minus_control_pp` (test accuracy at early stop,
    paired by trial) with its `_ci_low` / `_ci_high`. Rows are ordered by round. Every condition of
    `results.CONDITIONS` gets its file, `[]` when the study does not run it (a control
    switched off): dvc.yaml declares all of them, and `dvc plots` warns about a missing
    file but not about an empty one.
    """
    runs = results.as_runs(data)
    cells = results.cell_table(runs, tuple(DVC_PLOT_FIELDS.values()))
    out: dict[str, list[dict[str, Any]]] = {f"accuracy_{c}.json": [] for c in results.CONDITIONS}
    for cond in results.ordered_conditions(cells["condition"]):
        rows = []
        for cell in cells[cells["condition"] == cond].sort_values("round").to_dict("records"):
            row = _dvc_row(cell)
            if cond != "ticket":
                d = results.paired_difference(
                    runs,
                    "test_accuracy_at_early_stop",
                    ("ticket", int(cell["round"])),
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
    mean of each `DVC_CURVE_FIELDS` over them. At most `DVC_CURVE_POINTS` evaluations per
    round, evenly strided and always the last, so that long studies keep a small table.
    Rows are ordered by condition, round and iteration. (The test curve is left out: it
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
                row.update({f: float(means.at[it, f]) for f in fields})
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


# ------------------------------------------------------------------------ all at once


#: Names (also the file stems under out_dir) of the figures `render_all` always writes.
SUMMARY_FIGURES: tuple[str, ...] = (
    "accuracy_vs_remaining",
    "early_stop_vs_remaining",
    "learning_curves",
    "density_by_round",
)


def metric_figures(
    metrics: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    densities: Mapping[int, Mapping[str, float]] | None = None,
) -> dict[str, Path]:
    """The figures drawn from the metrics files alone: accuracy and early stop vs %
    remaining, and the layer densities (`densities` from the masks, where given, over the
    ticket metrics' `density`)."""
    out_dir = Path(out_dir)
    runs = results.runs_frame(metrics)
    dens: dict[int, Mapping[str, float]] = {
        int(m["round"]): dict(m["density"])
        for m in metrics
        if m["condition"] == "ticket" and m.get("density")
    }
    dens.update(densities or {})
    return {
        "accuracy_vs_remaining": accuracy_vs_remaining(runs, out_dir / "accuracy_vs_remaining.png"),
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
    arch: Architecture = LENET,
) -> dict[str, Path]:
    """Every figure of the study, under `out_dir`; returns name -> path (name + ".png").

    The four summary figures are always written (with "no data" when empty), so they can
    be declared as stage outputs. Mask figures (`mask_figures`, for network `arch`) use the
    lowest trial id of each round. Layer densities come from the masks (mean over trials),
    falling back to the ticket metrics' `density` for rounds without masks.
    """
    out_dir = Path(out_dir)
    ticket = {int(m["round"]): m for m in metrics if m["condition"] == "ticket"}
    out = metric_figures(metrics, out_dir, densities_from_masks(masks_by_round))
    out["learning_curves"] = learning_curves(
        curves.get("ticket", {}), ticket, out_dir / "learning_curves.png"
    )
    for rnd in sorted(masks_by_round):
        trials = masks_by_round[rnd]
        if not trials:
            continue
        trial = min(trials)
        out.update(mask_figures(trials[trial], rnd, trial, arch, out_dir))
    return out


def mask_figures(
    mask: Mask, rnd: int, trial: int, arch: Architecture, out_dir: str | Path
) -> dict[str, Path]:
    """Round `rnd`'s figures of one trial's mask of network `arch`: each conv layer's map
    of kernel densities per channel pair (`masks/r03_conv1_mask`); a dense first layer's
    inputs x hidden units mask (`masks/r03_fc1_mask`) and, where it sees the pixels of a
    one-channel image, its pixel map (`masks/r03_pixel_map`). Name -> path."""
    out_dir, out = Path(out_dir), {}
    for layer in arch.layers:
        kernel = np.asarray(mask[layer.name])
        pct = 100.0 * float(kernel.mean())
        if layer.kind == "conv":
            name = paths.layer_mask_figure_name(rnd, layer.name)
            title = f"Round {rnd}, trial {trial}: {layer.name} mask ({pct:.1f}% kept)"
            out[name] = conv_mask_image(kernel, out_dir / f"{name}.png", layer.name, title)
    first = arch.layers[0]
    if first.kind != "dense":
        return out
    fc1 = np.asarray(mask[first.name])
    pct = 100.0 * float(fc1.mean())
    mask_name, map_name = paths.mask_figure_names(rnd)
    out[mask_name] = first_layer_mask_image(
        fc1,
        out_dir / f"{mask_name}.png",
        f"Round {rnd}, trial {trial}: first-layer mask ({pct:.1f}% of fc1 kept)",
    )
    if arch.first_layer_sees_pixels:
        out[map_name] = pixel_connection_map(
            fc1,
            out_dir / f"{map_name}.png",
            f"Round {rnd}, trial {trial}: fc1 connections kept per input pixel",
            (arch.input_shape[0], arch.input_shape[1]),
        )
    return out
