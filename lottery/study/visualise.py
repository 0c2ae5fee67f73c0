"""Stage `visualise`: the figures, from the masks, the metrics and the curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lottery.core import io, paths
from lottery.core.masks import (
    load_mask,
)
from lottery.core.params import Params
from lottery.study.common import log

# ---------------------------------------------------------------- figures and report


def round_names(params: Params) -> list[str]:
    return [paths.round_name(0), *params.pipeline.rounds]


def load_metrics(params: Params, root: Path) -> list[dict[str, Any]]:
    """The metrics files of the pipeline's stages, in today's schema (`lottery.results`)."""
    from lottery.analysis import results

    lay = paths.Layout(root)
    defaults = {
        "eval_every": params.train.eval_every,
        "iterations": params.train.iterations,
        "patience": int(getattr(params.train, "patience", 0) or 0),
    }
    names = [("ticket", n) for n in round_names(params)]
    names += [("reinit", n) for n in params.pipeline.reinit_rounds]
    names += [("random", n) for n in params.pipeline.random_rounds]
    return [
        results.normalise(io.read_json(lay.metrics_path(cond, n)), defaults) for cond, n in names
    ]


def load_curves(params: Params, root: Path) -> dict[str, dict[int, dict[str, Any]]]:
    lay = paths.Layout(root)
    curves: dict[str, dict[int, dict[str, Any]]] = {}
    for m in load_metrics(params, root):
        curves.setdefault(m["condition"], {})[m["round"]] = io.read_json(
            lay.curves_path(m["condition"], paths.round_name(int(m["round"])))
        )
    return curves


def visualise(params: Params, root: Path) -> dict[str, Path]:
    from lottery.report import figures as plots

    lay, net = paths.Layout(root), params.architecture()
    rounds = range(params.study.rounds + 1)
    masks = {
        k: {t: load_mask(lay.round_mask_path(k, t), arch=net) for t in range(params.study.trials)}
        for k in rounds
    }
    figures = plots.render_all(
        masks, load_metrics(params, root), load_curves(params, root), lay.figures_dir(), net
    )
    log(f"wrote {len(figures)} figures to {paths.figures_dir()}")
    return figures
