"""The figures of the masks: what each round's pruning kept, and the layers' densities.

Mask figures follow the network (`mask_figures`' `arch`): every conv layer gets a map of
the fraction of each 3x3 kernel kept per (input, output) channel pair; a dense first layer
(an `mlp`) gets its inputs x hidden units mask, and, where it sees the pixels of a
one-channel image (`Architecture.first_layer_sees_pixels`), the map of connections kept
per pixel. The density figure draws each layer's fraction kept by round, on a log scale.
Sizes and writing: `lottery.report.canvas`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from lottery.core import paths
from lottery.core.arch import Architecture
from lottery.report.canvas import (
    CONV_FIGSIZE,
    LINE_FIGSIZE,
    MASK_FIGSIZE,
    PIXEL_FIGSIZE,
    fmt_percent,
    new_figure,
    no_data,
    save_figure,
)

#: Side of the square MNIST image; fc1 has IMAGE_SIDE**2 inputs.
IMAGE_SIDE = 28
#: Colours of the first-layer mask image.
PRUNED_COLOR = "#eeeeee"
KEPT_COLOR = "#1f4e79"

Mask = Mapping[str, np.ndarray]


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
    """A dense first layer's mask: inputs (rows) x hidden units (columns), kept or pruned."""
    mask = _check_fc1(fc1_mask, None)
    kept = int(mask.sum())
    fig, ax = new_figure(MASK_FIGSIZE)
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
    """The connections a dense first layer keeps per input pixel, as an image."""
    counts = pixel_counts(fc1_mask, image_side)
    n_hidden = np.asarray(fc1_mask).shape[1]
    fig, ax = new_figure(PIXEL_FIGSIZE)
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
    """A conv layer's fraction of each kernel kept, per (input, output) channel pair."""
    dens = conv_channel_density(kernel_mask)
    kh, kw, c_in, c_out = np.shape(kernel_mask)
    fig, ax = new_figure(CONV_FIGSIZE)
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
    """Each layer's % of weights remaining (and overall) by round, on a log scale."""
    fig, ax = new_figure(LINE_FIGSIZE)
    rounds = sorted(densities)
    if not rounds:
        no_data(ax, "densities")
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
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_percent(v)))
    ax.set_title("Density of each layer by pruning round")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def layer_density_by_round(densities: Mapping[int, Mapping[str, float]], path: str | Path) -> Path:
    """Density (fraction kept, plotted as %) of each layer and overall vs round; log y."""
    return save_figure(density_by_round_figure(densities), path)


def _nice_log_ticks(lowest: float, highest: float = 100.0) -> list[float]:
    """1-2-5 ticks from just below `lowest` up to `highest` (percent)."""
    ticks = [m * 10.0**e for e in range(-4, 3) for m in (1, 2, 5)]
    below = [t for t in ticks if t <= lowest]
    start = below[-1] if below else ticks[0]
    return [t for t in ticks if start <= t <= highest]


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
