"""The report's results table: one Markdown row per (condition, round).

Each cell is 'mean (min–max) [95% low, high]', all over trial means. A censored row says
so: its early-stop cell is a lower bound ("≥ …, k/n censored") and its accuracies are
starred (they may be understated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lottery.analysis.inference import Cell
from lottery.analysis.results import Stats
from lottery.core.conditions import TICKET, label
from lottery.report.formatting import (
    fmt_accuracy,
    fmt_iteration,
    fmt_percent_remaining,
    trials,
)


def row_label(condition: str, rnd: int) -> str:
    """'dense (round 0)' for the ticket condition's round 0, else '<label>, round k'."""
    if condition == TICKET.name and rnd == 0:
        return "dense (round 0)"
    return f"{label(condition)}, round {rnd}"


def table_cell(s: Stats, n_runs: int, n_trials: int, fmt: Callable[[float], str]) -> str:
    """'mean (min–max) [95% low, high]', all over trial means; '[no interval: 2 trials]'
    with < 3 trials; the value alone for a single run."""
    if n_runs == 1:
        return str(fmt(s.mean))
    text = f"{fmt(s.mean)} ({fmt(s.min)}–{fmt(s.max)})"
    if s.ci_low is None or s.ci_high is None:
        return f"{text} [no interval: {trials(n_trials)}]"
    return f"{text} [{fmt(s.ci_low)}, {fmt(s.ci_high)}]"


TABLE_HEAD = (
    "| condition | % weights remaining | early-stop iteration "
    "| test acc. at early stop | test acc. when training stopped |"
)


def markdown_table(all_cells: Sequence[Cell]) -> str:
    """A Markdown table, one row per (condition, round) (see `table_cell` for the cells).

    Censored rows: the early-stop cell starts with "≥" and ends with "k/n censored", and
    the accuracy cells end with "*" (the accuracy may be understated).
    """
    lines = [TABLE_HEAD, "|---|---:|---:|---:|---:|"]
    for c in all_cells:
        es = table_cell(c.early_stop, c.n_runs, c.n_trials, fmt_iteration)
        acc = table_cell(c.accuracy, c.n_runs, c.n_trials, fmt_accuracy)
        acc_stop = table_cell(c.accuracy_at_stop, c.n_runs, c.n_trials, fmt_accuracy)
        if c.censored:
            es = f"≥ {es}, {c.n_censored}/{c.n_runs} censored"
            acc, acc_stop = f"{acc} *", f"{acc_stop} *"
        cells_ = [row_label(c.condition, c.round), fmt_percent_remaining(c.percent_remaining)]
        lines.append("| " + " | ".join([*cells_, es, acc, acc_stop]) + " |")
    return "\n".join(lines) + "\n"
