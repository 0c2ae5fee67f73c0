"""The Markdown report of a study: its title, the preamble that says how every number was
computed, the sentences (`claims`), the results table (`tables`), the figures and the
params; and the files the report stage writes beside it (`write_outputs`).

The report is deterministic (no timestamps, no run ids), so a kept study's report
regenerates byte for byte from its metrics (`lottery.report.regenerate`).
"""

from __future__ import annotations

import functools
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lottery.analysis import legacy, results, statistics
from lottery.analysis.inference import (
    ALPHA,
    CLEAR_SHARE,
    DEFAULT_MARGIN_PP,
    Cell,
    Summary,
    cells,
    compute_summary,
)
from lottery.analysis.results import CensoringWindow
from lottery.core import io, paths
from lottery.core.params import network_and_dataset
from lottery.report import dvc_tables
from lottery.report.claims import summary_claims
from lottery.report.tables import markdown_table

#: How the title names each dataset and network (a params file without `data.dataset` or
#: `model` predates them: LeNet-300-100 on MNIST).
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
NETWORK_TITLES = {"conv2": "Conv-2", "conv4": "Conv-4", "conv6": "Conv-6"}
#: Where the params mapping may give the match margin (pp); `DEFAULT_MARGIN_PP` without it.
MARGIN_KEY = ("report", "match_margin_pp")


def title(params: Mapping[str, Any]) -> str:
    """The report's title: the network and the dataset the study trained."""
    model, dataset = network_and_dataset(params)
    network = model["network"]
    if network == "mlp":
        hidden = [int(h) for h in model["hidden"]]
        name = "LeNet" if hidden == [300, 100] else "MLP"
        network = "-".join([name, *map(str, hidden)])
    network = NETWORK_TITLES.get(network, network)
    return f"Lottery Ticket Hypothesis: {network} on {DATASET_TITLES.get(dataset, dataset)}"


def match_margin(params: Mapping[str, Any]) -> float:
    """The match margin (pp) of a raw params mapping: `report.match_margin_pp`, else the
    default (params files that predate the key)."""
    section = params.get(MARGIN_KEY[0]) or {}
    value = section.get(MARGIN_KEY[1]) if isinstance(section, Mapping) else None
    return DEFAULT_MARGIN_PP if value is None else float(value)


def validation_size(params: Mapping[str, Any]) -> int | None:
    """`data.validation_size` of a raw params mapping (None when it has none)."""
    value = (params.get("data") or {}).get("validation_size")
    return None if value is None else int(value)


def summary_for(
    runs: pd.DataFrame, params: Mapping[str, Any], window: CensoringWindow | None = None
) -> Summary:
    """`compute_summary` with the margin and the validation size the params give."""
    return compute_summary(runs, match_margin(params), window, validation_size(params))


# ------------------------------------------------------------------ the report


FIGURE_CAPTIONS: dict[str, str] = {
    "accuracy_vs_remaining": "Test accuracy at the early-stop iteration vs % of weights remaining",
    "end_accuracy_vs_remaining": "Test accuracy at the end of training vs % of weights remaining",
    "early_stop_vs_remaining": "Early-stop iteration vs % of weights remaining",
    "learning_curves": "Test accuracy during training for selected pruning levels",
    "density_by_round": "Density of each layer by pruning round",
}


def figure_caption(name: str) -> str:
    """The report's caption of figure `name` (a summary figure's, or a mask figure's)."""
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    place = paths.parse_mask_figure(name)
    if place:
        rnd, kind = place
        if kind == "fc1_mask":
            what = "first-layer mask (input pixels × hidden units)"
        elif kind == "pixel_map":
            what = "fc1 connections kept per input pixel (28×28)"
        else:  # a conv layer: `mask_figures.conv_mask_figure`
            layer = kind.removesuffix("_mask")
            what = f"{layer} mask, fraction of each kernel kept per channel pair"
        return f"Round {rnd}: {what}"
    return name.replace("_", " ")


def figure_link(path: str | Path, report_dir: str | Path) -> str:
    """A POSIX link to `path` for a report in `report_dir`.

    Absolute paths are made relative to `report_dir`; relative ones are taken as already
    relative to it.
    """
    path = Path(path)
    if path.is_absolute():
        path = Path(os.path.relpath(path, Path(report_dir).resolve()))
    return path.as_posix()


def _runs_line(all_cells: Sequence[Cell]) -> str:
    counts: dict[str, set[int]] = {}
    for c in all_cells:
        counts.setdefault(c.condition, set()).add(c.n_runs)
    if not counts:
        return "No metrics were found."
    parts = [f"{c} {', '.join(map(str, sorted(n)))}" for c, n in counts.items()]
    return f"Runs per (condition, round): {'; '.join(parts)}."


#: Trials at which the preamble states the interval's measured coverage.
COVERAGE_TRIALS = 5


@functools.cache
def measured_coverage(n: int = COVERAGE_TRIALS) -> dict[str, float]:
    """distribution -> coverage of the report's 95% interval at n values (seeded)."""
    return {d: statistics.coverage("t", d, n) for d in statistics.DISTRIBUTIONS}


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=90, break_on_hyphens=False, break_long_words=False)


def protocol(params: Mapping[str, Any]) -> str:
    """Where each round's mask was cut (`prune.point`) and where each network stopped
    training, so that "when training stopped" says which weights it means."""
    train = legacy.train_settings(params)
    horizon, patience = train.get("iterations", 0), train["patience"]
    point = (params.get("prune") or {}).get("point")  # None: the study predates the key
    if point == "early_stop":
        cut = (
            "Each round's mask was cut from a ticket's weights at its minimum validation "
            "loss (`prune.point: early_stop`, as Keras' `restore_best_weights`)."
        )
        stops = "every network"
    elif point is None and patience:
        cut = (
            "Each round's mask was cut from a ticket's weights where it stopped training "
            "(this study predates `prune.point`; under patience that is neither the paper's "
            "point, the horizon, nor the minimum)."
        )
        stops = "every network"
    else:
        cut = (
            "Each round's mask was cut from a ticket's weights at the horizon "
            f"({horizon:,} iterations, the paper's point"
            f"{'' if point else '; this study predates `prune.point`'}): the dense network "
            "and every ticket trained to it."
        )
        stops = "a control (reinit, random prune)"
    if not patience:
        return f"{cut} Every network trained all {horizon:,} iterations (patience 0)."
    return (
        f"{cut} With patience {patience:,}, {stops} stopped training {patience:,} iterations "
        "after its minimum validation loss (or at the horizon), and its test accuracy when "
        "training stopped is taken there."
    )


def preamble(s: Summary, params: Mapping[str, Any] | None = None) -> str:
    """How every number below was computed: the protocol (with `params`), units, intervals
    (with their measured coverage), the verdicts' rules and the censoring window."""
    cov = measured_coverage()
    w = s.window
    if w.iterations is None:
        censoring = (
            "A run is censored when training reached its last iteration with the minimum "
            f"validation loss in the last two evaluations (the narrowest rule: {w.source})."
        )
    else:
        censoring = (
            f"A run is censored when it stopped less than W = {w.iterations:,} iterations after "
            f"its minimum validation loss; W is {w.source}."
        )
    parts = [protocol(params)] if params is not None else []
    parts += [
        "All numbers below are computed from the pipeline's metrics files. Accuracies are "
        "test accuracies in %, taken at the early-stop iteration (minimum validation loss) "
        'unless marked "when training stopped"; pp = percentage points. Each table cell is '
        "mean (min–max) [95% interval], all three over trial means (the runs of one trial "
        f"averaged first); with fewer than {statistics.MIN_INTERVAL_TRIALS} trials no "
        "interval is possible.",
        f"Intervals are {statistics.METHOD}. In {statistics.COVERAGE_SIMS:,} simulated data "
        f"sets of {COVERAGE_TRIALS} values, its nominal 95% interval held the true mean "
        f"{cov['normal']:.1%} of the time for normal data, {cov['lognormal']:.1%} for skewed "
        f"(lognormal) and {cov['t3']:.1%} for heavy-tailed (t, 3 degrees of freedom) data "
        "(`lottery.analysis.statistics`).",
        "Ticket − dense and ticket − control differences are paired by trial. A ticket "
        f"matches dense when its ticket − dense interval lies above −{s.margin_pp:.2f} pp (the "
        "match margin), falls short when it lies below, and is undetermined otherwise. "
        "Ticket − reinit and ticket − random prune are one family of tests each, over the "
        f"rounds: a difference is called real only when its Holm-adjusted p is below "
        f"{ALPHA} and its interval excludes 0. The best and the earliest-stopping "
        f"ticket come with their runner-up and the share of {statistics.RESAMPLES:,} "
        "bootstrap resamples of the trials that pick the same round; below "
        f"{CLEAR_SHARE:.0%} there is no clear pick.",
        f"{censoring} A censored run's early-stop iteration is a lower bound (≥, with the "
        "count of censored runs) and its accuracies (*) may be understated.",
    ]
    return "\n\n".join(_paragraph(x) for x in parts)


def render_report(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
    figures: Mapping[str, Path],
    params: Mapping[str, Any],
    study_hash: str,
    git_commit: str,
    report_dir: str | Path,
    window: CensoringWindow | None = None,
) -> str:
    """The whole report as Markdown (deterministic: no timestamps, no run ids). The match
    margin and the validation size come from `params` (`summary_for`); runs are censored
    under `window` (default: the patience evidence's)."""
    runs = results.as_runs(data)
    summary = summary_for(runs, params, window)
    runs = results.censor(runs, summary.window)
    all_cells = cells(runs)
    out = [f"# {title(params)}", "", preamble(summary, params), "", _runs_line(all_cells), ""]
    out += ["## Summary", ""]
    out += [f"- {c}" for c in summary_claims(summary)]
    out += ["", "## Results", "", markdown_table(all_cells).rstrip("\n"), ""]
    if figures:
        out += ["## Figures", ""]
        for name, path in figures.items():
            caption = figure_caption(name)
            out += [f"### {caption}", "", f"![{caption}]({figure_link(path, report_dir)})", ""]
    out += [
        "## Parameters",
        "",
        f"- params hash: `{study_hash}`",
        f"- git revision: `{git_commit}`",
        "",
        "```yaml",
        yaml.safe_dump(dict(params), sort_keys=False, default_flow_style=False).rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(out)


def write_report(path: str | Path, text: str) -> Path:
    """Write the report atomically."""
    io.write_text(path, text)
    return Path(path)


def figure_order(fig_dir: str | Path) -> dict[str, Path]:
    """name -> absolute path of every PNG under `fig_dir`: summary figures, then masks."""
    fig_dir = Path(fig_dir)
    found = {
        p.relative_to(fig_dir).with_suffix("").as_posix(): p.resolve()
        for p in sorted(fig_dir.rglob("*.png"))
    }
    shown = {k: v for k, v in found.items() if not k.startswith("masks/")}
    shown.update({k: v for k, v in found.items() if k.startswith("masks/")})
    return shown


def write_outputs(
    runs: pd.DataFrame,
    text: str,
    summary: Summary,
    report_path: str | Path,
    plots_dir: str | Path,
    summary_path: str | Path,
) -> None:
    """The report, the dvc plots tables, summary.json and statistics.json beside it, each
    written atomically (runs censored under the summary's window)."""
    runs = results.censor(runs, summary.window)
    write_report(report_path, text)
    dvc_tables.write_dvc_plot_tables(dvc_tables.dvc_plot_rows(runs), plots_dir)
    all_cells = cells(runs)
    io.write_json(summary_path, dvc_tables.summary_json(summary), sort_keys=False)
    io.write_json(
        Path(summary_path).with_name(dvc_tables.STATISTICS_FILE),
        dvc_tables.statistics_json(summary, all_cells),
    )
