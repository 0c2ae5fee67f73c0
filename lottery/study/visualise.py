"""Stage `visualise`: the figures, from the masks, the metrics and the curves; and the
pipeline's stages whose metrics the figures and the report read (`stages`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lottery.core import paths
from lottery.core.conditions import RANDOM, REINIT, TICKET
from lottery.core.masks import load_mask
from lottery.core.params import Params
from lottery.study.common import log

if TYPE_CHECKING:
    from lottery.analysis.frames import Stage

# ---------------------------------------------------------------- figures and report


def round_names(params: Params) -> list[str]:
    return [paths.round_name(0), *params.pipeline.rounds]


def stages(params: Params) -> list[Stage]:
    """(condition, round name) of every stage of the pipeline that writes a metrics file:
    the ticket rounds from r00, then the reinit and the random-prune rounds."""
    out = [(TICKET.name, n) for n in round_names(params)]
    out += [(REINIT.name, n) for n in params.pipeline.reinit_rounds]
    out += [(RANDOM.name, n) for n in params.pipeline.random_rounds]
    return out


def visualise(params: Params, root: Path) -> dict[str, Path]:
    from lottery.analysis import frames
    from lottery.report import figures as plots

    lay, net = paths.Layout(root), params.architecture()
    rounds = range(params.study.rounds + 1)
    masks = {
        k: {t: load_mask(lay.round_mask_path(k, t), arch=net) for t in range(params.study.trials)}
        for k in rounds
    }
    metrics = frames.load_metrics(root, stages(params))
    curves = frames.read_curves(root, metrics)
    figures = plots.render_all(masks, metrics, curves, lay.figures_dir(), net)
    log(f"wrote {len(figures)} figures to {paths.figures_dir()}")
    return figures
