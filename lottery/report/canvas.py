"""How every figure of the study is made and written: its size, its own canvas, its PNG.

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
"""

from __future__ import annotations

import io as _bytes_io
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lottery.core import io

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


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render `fig` to PNG in memory, then write it atomically to `path`."""
    path = Path(path)
    buf = _bytes_io.BytesIO()
    # No "Software" metadata: the bytes then depend only on what is drawn.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    with io.atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


def new_figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure of `figsize` on its own Agg canvas, with one set of axes."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # this figure's own canvas: no global backend is touched
    return fig, fig.add_subplot()


def no_data(ax: Axes, what: str) -> None:
    """Say 'no data: `what`' in the middle of empty axes (the figure is still written)."""
    ax.text(0.5, 0.5, f"no data: {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def fmt_percent(value: float) -> str:
    """A percentage tick or legend label: '100', '51.2', '3.6', '0.59'."""
    if value >= 10:
        return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"
