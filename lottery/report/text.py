"""The Markdown report: every number and every sentence is computed from the metrics.

Nothing here is a hand-written claim. `lottery.inference.compute_summary` derives the
facts (with the numbers tests can check); `summary_claims` renders them as sentences
whose wording follows the numbers, under these rules (`lottery.inference` has them in
full):

- **Censoring.** A run that stopped less than W iterations after its minimum validation
  loss is censored, W being the longest wait between new minima in the committed patience
  evidence (`results.evidence_window`). Tables write its cell's early-stop iteration as a
  lower bound (`≥ 9660 …, 2/5 censored`) and star its accuracies; every sentence that
  uses such a cell says so.
- **Uncertainty.** A cell's mean, min–max and 95% interval are all over trial means; the
  interval is Student-t (its coverage, measured by `lottery.statistics`, is stated in the
  preamble). Differences are paired by trial.
- **Picks on validation, with their margin.** The "best" ticket is the round with the
  highest mean validation accuracy at early stop; it and the earliest-stopping ticket come
  with their runner-up, the margin and the share of bootstrap resamples of the trials
  that pick them ("no clear best among rounds …" below 80%).
- **Match with a margin.** A ticket matches dense, falls short, or is undetermined, by its
  ticket − dense interval against −M (`match_margin`); the floor is read from those.
- **Multiplicity.** Ticket − reinit and ticket − random are one family of tests each,
  over the rounds, with Holm's adjustment.

Accuracies are fractions in the metrics files and percentages (2 decimals) here;
accuracy differences are in percentage points (pp).
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lottery.analysis import results, statistics
from lottery.analysis.inference import (
    ACC,
    ACC_STOP,
    ALPHA,
    CLEAR_SHARE,
    DEFAULT_MARGIN_PP,
    ES,
    FALLS_SHORT,
    MATCHES,
    VAL_ACC,
    BestTicket,
    Cell,
    ControlGap,
    EarliestStop,
    Floor,
    Match,
    Pick,
    Summary,
    cells,
    compute_summary,
    gap_sign,
)
from lottery.analysis.results import CensoringWindow, Difference, Stats
from lottery.core import io, paths
from lottery.core.params import network_and_dataset
from lottery.core.paths import round_name

__all__ = [
    "ACC",
    "ACC_STOP",
    "DEFAULT_MARGIN_PP",
    "ES",
    "VAL_ACC",
    "BestTicket",
    "Cell",
    "ControlGap",
    "EarliestStop",
    "Floor",
    "Match",
    "Pick",
    "Summary",
    "cells",
    "compute_summary",
    "render_report",
    "statistics_json",
    "summary_claims",
    "summary_json",
]

CONTROL_LABELS: dict[str, str] = {
    "ticket": "ticket",
    "reinit": "reinit control",
    "random": "random-prune control",
}
GAP_LABELS: dict[str, str] = {"reinit": "reinit", "random": "random prune"}
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


# ---------------------------------------------------------------------- formatting


def fmt_percent_remaining(value: float) -> str:
    """100.0, 51.2, 3.6, then 2 significant digits below 1% (0.59)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _fmt_accuracy(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}"


def _fmt_iteration(value: float) -> str:
    return f"{value:.0f}"


def _signed(value: float, decimals: int = 2) -> str:
    """'+0.20', '-1.35', never '-0.00'."""
    return f"{round(value, decimals) + 0.0:+.{decimals}f}"


def _pct(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}%"


def _where(c: Cell) -> str:
    return f"round {c.round} ({fmt_percent_remaining(c.percent_remaining)}% of weights remaining)"


def _ties(rounds: Sequence[int]) -> str:
    if not rounds:
        return ""
    word = "round" if len(rounds) == 1 else "rounds"
    return f" (tied with {word} {', '.join(map(str, sorted(rounds)))}; the sparsest is named)"


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def _share(value: float) -> str:
    return f"{100.0 * value:.0f}%"


def fmt_p(p: float) -> str:
    """'0.012', '< 0.001'."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def difference_text(d: Difference, unit: str, decimals: int = 2, extra: str = "") -> str:
    """'+0.57 pp (95% interval +0.30 to +0.81, 5 trials)' or '… (2 trials: no interval
    possible)'; `extra` is appended inside the parentheses."""
    value = f"{_signed(d.mean, decimals)} {unit}"
    if d.ci_low is None or d.ci_high is None:
        return f"{value} ({_trials(d.n_trials)}: no interval possible)"
    return (
        f"{value} (95% interval {_signed(d.ci_low, decimals)} to "
        f"{_signed(d.ci_high, decimals)}, {_trials(d.n_trials)}{extra})"
    )


def verdict(d: Difference, above: str, below: str, decimals: int = 2) -> str:
    """`above` / `below` when the interval, as printed (`decimals`), excludes 0, else
    "no clear difference"; "" when there is no interval."""
    if d.ci_low is None or d.ci_high is None:
        return ""
    if round(d.ci_low, decimals) > 0:
        return above
    if round(d.ci_high, decimals) < 0:
        return below
    return "no clear difference"


def _with_verdict(d: Difference, unit: str, above: str, below: str, decimals: int = 2) -> str:
    text = difference_text(d, unit, decimals)
    word = verdict(d, above, below, decimals)
    return f"{text}: {word}" if word else text


def holm_text(p_holm: float | None, family: int) -> str:
    """'; Holm p 0.012 over 15 rounds' ('' without a p)."""
    if p_holm is None:
        return ""
    return f"; Holm p {fmt_p(p_holm)} over {family} round{'s' if family != 1 else ''}"


def gap_text(g: ControlGap, above: str, below: str) -> str:
    """A ticket − control difference with its Holm-adjusted verdict (`gap_sign`)."""
    text = difference_text(g.difference, "pp", 2, holm_text(g.p_holm, g.family))
    if g.p_holm is None:
        return text
    word = {1: above, -1: below}.get(gap_sign(g), "no clear difference")
    return f"{text}: {word}"


def _censored_note(c: Cell) -> str:
    return f"{c.n_censored}/{c.n_runs} runs censored"


def _early_stop_value(c: Cell) -> str:
    """Mean early-stop iteration, as a lower bound ('≥ 9660') when runs are censored."""
    mean = _fmt_iteration(c.early_stop.mean)
    return f"≥ {mean}" if c.censored else mean


# --------------------------------------------------------------------------- table


def row_label(condition: str, rnd: int) -> str:
    if condition == "ticket" and rnd == 0:
        return "dense (round 0)"
    return f"{CONTROL_LABELS.get(condition, condition)}, round {rnd}"


def table_cell(s: Stats, n_runs: int, n_trials: int, fmt: Any) -> str:
    """'mean (min–max) [95% low, high]', all over trial means; '[no interval: 2 trials]'
    with < 3 trials; the value alone for a single run."""
    if n_runs == 1:
        return str(fmt(s.mean))
    text = f"{fmt(s.mean)} ({fmt(s.min)}–{fmt(s.max)})"
    if s.ci_low is None or s.ci_high is None:
        return f"{text} [no interval: {_trials(n_trials)}]"
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
        es = table_cell(c.early_stop, c.n_runs, c.n_trials, _fmt_iteration)
        acc = table_cell(c.accuracy, c.n_runs, c.n_trials, _fmt_accuracy)
        acc_stop = table_cell(c.accuracy_at_stop, c.n_runs, c.n_trials, _fmt_accuracy)
        if c.censored:
            es = f"≥ {es}, {c.n_censored}/{c.n_runs} censored"
            acc, acc_stop = f"{acc} *", f"{acc_stop} *"
        cells_ = [row_label(c.condition, c.round), fmt_percent_remaining(c.percent_remaining)]
        lines.append("| " + " | ".join([*cells_, es, acc, acc_stop]) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ sentences


def _window_words(w: CensoringWindow) -> str:
    return f"{w.iterations:,} iterations (the censoring window W)"


def _censoring_claim(s: Summary) -> str:
    w = s.window
    if not s.censored:
        if w.iterations is None:
            return (
                "No run is censored: every run reached its minimum validation loss before the "
                "last two evaluations of its training, or was stopped by patience."
            )
        return (
            f"No run is censored: every run trained at least {_window_words(w)} past its "
            f"minimum validation loss."
        )
    by_cond: dict[str, list[Cell]] = {}
    for c in s.censored:
        by_cond.setdefault(c.condition, []).append(c)
    parts = []
    for cond, cs in by_cond.items():
        word = "round" if len(cs) == 1 else "rounds"
        parts.append(f"{CONTROL_LABELS.get(cond, cond)} {word} {_censored_rounds(cs)}")
    rule = (
        "training reached its last iteration with the minimum validation loss in the last "
        "two evaluations"
        if w.iterations is None
        else f"they stopped less than {_window_words(w)} after their minimum validation loss"
    )
    return (
        f"{s.n_censored} of {s.n_runs} runs are censored: {rule} ({'; '.join(parts)}). Their "
        f"early-stop iterations are lower bounds and their accuracies may be understated."
    )


def _censored_rounds(cs: Sequence[Cell]) -> str:
    """'1 (1/5), 3–4 (3/5 each), 6–15 (5/5 each)': consecutive rounds with the same count
    of censored runs share one entry."""
    groups: list[list[Cell]] = []
    for c in cs:
        last = groups[-1][-1] if groups else None
        same = last is not None and (last.n_censored, last.n_runs) == (c.n_censored, c.n_runs)
        if same and last is not None and c.round == last.round + 1:
            groups[-1].append(c)
        else:
            groups.append([c])
    return ", ".join(
        f"{g[0].round} ({g[0].n_censored}/{g[0].n_runs})"
        if len(g) == 1
        else f"{g[0].round}–{g[-1].round} ({g[0].n_censored}/{g[0].n_runs} each)"
        for g in groups
    )


def _pick_words(p: Pick, what: str) -> str:
    """' 81% of 10,000 bootstrap resamples of the trials pick round 5' and, below the
    clear share, ': no clear {what} among rounds 5 (52%), 7 (30%)'."""
    if p.share is None:
        return ""
    text = (
        f" {_share(p.share)} of {statistics.RESAMPLES:,} bootstrap resamples of the trials "
        f"pick round {p.ticket.round}"
    )
    if p.clear:
        return text
    listed = ", ".join(f"{r} ({_share(v)})" for r, v in p.contenders())
    return f"{text}: no clear {what} among rounds {listed}"


def _earliest_claim(s: Summary, e: EarliestStop) -> str:
    t, dense, p = e.ticket, s.dense, e.pick
    text = (
        f"The earliest-stopping ticket is {_where(t)}{_ties(e.tied_rounds)}: mean early-stop "
        f"iteration {_early_stop_value(t)}"
    )
    if dense is not None:
        text += f" vs {_early_stop_value(dense)} for the dense network"
        if e.factor_vs_dense is not None:
            text += f", a factor of {e.factor_vs_dense:.1f} (dense ÷ ticket)"
        if e.vs_dense is not None:
            text += "; dense − ticket = " + _with_verdict(
                e.vs_dense,
                "iterations",
                "the ticket stops earlier",
                "the ticket stops later",
                decimals=0,
            )
    text += "."
    if p.runner_up is not None:
        text += (
            f" Runner-up: round {p.runner_up.round} ({_early_stop_value(p.runner_up)}, "
            f"{p.margin:.0f} iterations later);{_pick_words(p, 'earliest-stopping round')}"
        ).rstrip(";")
        if e.vs_dense is not None and e.vs_dense.has_interval:
            text += (
                f" (the dense − ticket interval does not allow for picking the lowest of "
                f"{len(s.tickets)} rounds)"
            )
        text += "."
    censored = [c for c in (t, dense) if c is not None and c.censored]
    if censored:
        who = " and ".join(
            f"{'dense' if c.round == 0 else 'ticket'} {_censored_note(c)}" for c in censored
        )
        text += f" Censored runs ({who}) make these early-stop iterations lower bounds."
    return text


def _validation_margin(s: Summary, p: Pick) -> str:
    """'1 validation example of 25,000 (5 runs × 5,000)' or '0.004 pp'."""
    n = s.validation_size
    if n is None:
        return f"{100.0 * p.margin:.3f} pp of validation accuracy"
    runs = p.ticket.n_runs
    examples = round(p.margin * n * runs)
    word = "example" if examples == 1 else "examples"
    return f"{examples} validation {word} of {n * runs:,} ({runs} runs × {n:,})"


def _best_claim(s: Summary, b: BestTicket) -> str:
    t, dense, p = b.ticket, s.dense, b.pick
    text = (
        f"Chosen by mean validation accuracy at early stop, the best ticket is "
        f"{_where(t)}{_ties(b.tied_rounds)}, with {_pct(t.val_accuracy.mean)} on validation"
    )
    if p.runner_up is not None:
        text += (
            f"; runner-up: round {p.runner_up.round}, {_validation_margin(s, p)} behind;"
            f"{_pick_words(p, 'best')}"
        ).rstrip(";")
    text += f". Its mean test accuracy at early stop is {_pct(t.accuracy.mean)}"
    if dense is not None:
        text += f" vs {_pct(dense.accuracy.mean)} for the dense network"
        if b.vs_dense is not None:
            text += "; ticket − dense = " + _with_verdict(
                b.vs_dense, "pp", "the ticket is more accurate", "the ticket is less accurate"
            )
    text += "."
    if b.test_best.round != t.round:
        text += (
            f" Round {b.test_best.round} has the highest mean test accuracy "
            f"({_pct(b.test_best.accuracy.mean)}), but a round picked on test accuracy "
            f"would overstate the gain."
        )
    return text + _censored_tickets(dense, t)


def _verdict_list(matches: Sequence[Match]) -> str:
    """'round 14 is undetermined; rounds 15, 16 fall short' (in round order)."""
    groups: dict[str, list[int]] = {}
    for m in matches:
        groups.setdefault(m.verdict or "without an interval", []).append(m.round)
    parts = []
    for word, rounds in groups.items():
        many = len(rounds) > 1
        verb = {
            FALLS_SHORT: "fall short" if many else "falls short",
            MATCHES: "match" if many else "matches",
        }.get(word, f"{'are' if many else 'is'} {word}")
        parts.append(f"{'rounds' if many else 'round'} {', '.join(map(str, rounds))} {verb}")
    return "; ".join(parts)


def _match_rule(s: Summary) -> str:
    return (
        f"ticket − dense test accuracy at early stop, 95% interval above −{s.margin_pp:.2f} pp, "
        f"the match margin"
    )


def _floor_claim(s: Summary) -> str:
    dense = s.dense
    if dense is None:
        raise ValueError("a floor claim needs the dense round")
    f, rule = s.floor, _match_rule(s)
    if f is None:
        if all(m.verdict is None for m in s.matches):
            return "No match verdict is possible: with fewer than 3 trials there is no interval."
        return f"No pruned ticket matches dense ({rule}): {_verdict_list(s.matches)}."
    t = f.ticket
    pct = fmt_percent_remaining(t.percent_remaining)
    if f.is_sparsest_run:
        text = f"Tickets match dense ({rule}) down to at least {pct}% (the sparsest round run)"
    elif f.exact:
        text = f"Tickets match dense ({rule}) down to {pct}%"
    else:
        text = f"Tickets match dense ({rule}) down to at least {pct}%"
    text += f": round {t.round} has {_pct(t.accuracy.mean)} vs {_pct(dense.accuracy.mean)}"
    if f.vs_dense is not None:
        text += ", ticket − dense = " + difference_text(f.vs_dense, "pp")
    text += "."
    if f.sparser:
        text += f" Sparser: {_verdict_list(f.sparser)}."
    if f.failing:
        text += f" Denser: {_verdict_list(f.failing)}."
    return text + _censored_tickets(dense, t)


def _control_claim(cond: str, cs: Sequence[Cell]) -> str:
    label = CONTROL_LABELS.get(cond, cond)
    first, last = cs[0], cs[-1]

    def at(c: Cell) -> str:
        note = f"; {_censored_note(c)}" if c.censored else ""
        return f"at {fmt_percent_remaining(c.percent_remaining)}% (round {c.round}{note})"

    if first is last:
        return (
            f"The {label} {at(first)}: mean early-stop iteration {_early_stop_value(first)}, "
            f"mean test accuracy at early stop {_pct(first.accuracy.mean)}."
        )
    return (
        f"The {label}'s mean early-stop iteration goes from {_early_stop_value(first)} "
        f"{at(first)} to {_early_stop_value(last)} {at(last)}, and its mean test accuracy "
        f"at early stop from {_pct(first.accuracy.mean)} to {_pct(last.accuracy.mean)}."
    )


def _gap_claim(rnd: int, pct: float, gaps: Sequence[ControlGap]) -> str:
    parts = []
    for g in gaps:
        label = GAP_LABELS.get(g.control.condition, g.control.condition)
        part = f"ticket − {label} = " + gap_text(
            g, "the ticket is more accurate", "the ticket is less accurate"
        )
        if g.control.censored:
            part += f" ({label}: {_censored_note(g.control)}, its accuracy may be understated)"
        parts.append(part)
    text = (
        f"Round {rnd} ({fmt_percent_remaining(pct)}% remaining), test accuracy at early stop: "
        f"{'; '.join(parts)}."
    )
    return text + _censored_tickets(gaps[0].ticket)


def _censored_tickets(*tickets: Cell | None) -> str:
    """' The ticket of round 3 has 1/5 runs censored: …' for each censored ticket cell."""
    return "".join(
        f" The {'dense network' if t.round == 0 else f'ticket of round {t.round}'} has "
        f"{_censored_note(t)}: its accuracy may be understated."
        for t in tickets
        if t is not None and t.censored
    )


def summary_claims(
    data: pd.DataFrame | Sequence[Mapping[str, Any]] | Summary,
    margin_pp: float = DEFAULT_MARGIN_PP,
    window: CensoringWindow | None = None,
) -> list[str]:
    """Sentences rendered from `compute_summary` (pass a Summary to reuse one)."""
    s = data if isinstance(data, Summary) else compute_summary(data, margin_pp, window)
    dense = s.dense
    if not s.tickets and dense is None:
        return ["No ticket results were found, so there is nothing to summarise."]
    claims = [_censoring_claim(s)]
    if not s.tickets and dense is not None:
        claims.append(
            f"Only the dense network (round 0) has been trained: mean early-stop iteration "
            f"{_early_stop_value(dense)}, mean test accuracy at early stop "
            f"{_pct(dense.accuracy.mean)}; there are no pruned tickets to compare."
        )
    if dense is None:
        claims.append("The dense network (round 0) is missing, so no comparison to it is made.")
    if s.earliest is not None:
        claims.append(_earliest_claim(s, s.earliest))
    if s.best is not None:
        claims.append(_best_claim(s, s.best))
    if dense is not None and s.tickets:
        claims.append(_floor_claim(s))
    claims += [_control_claim(cond, cs) for cond, cs in s.controls.items()]
    if s.tickets and not s.gaps:
        claims.append(
            "No control runs (reinit, random prune) share a round with the tickets, so no "
            "ticket-vs-control differences are reported."
        )
    by_round: dict[int, list[ControlGap]] = {}
    for g in s.gaps:
        by_round.setdefault(g.round, []).append(g)
    for rnd, gs in by_round.items():
        claims.append(_gap_claim(rnd, gs[0].percent_remaining, gs))
    return claims


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
    return {
        "percent_remaining": c.percent_remaining,
        "n_runs": c.n_runs,
        "n_trials": c.n_trials,
        "n_censored": c.n_censored,
        ES: _stats_json(c.early_stop),
        ACC: _stats_json(c.accuracy),
        ACC_STOP: _stats_json(c.accuracy_at_stop),
        VAL_ACC: _stats_json(c.val_accuracy),
    }


def summary_json(s: Summary, all_cells: Sequence[Cell]) -> dict[str, Any]:
    """The report's facts as numbers for `dvc metrics diff` (accuracies as fractions,
    differences of accuracies in pp; intervals null with fewer than 3 trials)."""
    out: dict[str, Any] = {"runs": s.n_runs, "censored_runs": s.n_censored}
    if s.dense is not None:
        out["dense_test_accuracy"] = s.dense.accuracy.mean
        out["dense_early_stop_iteration"] = s.dense.early_stop.mean
    if s.earliest is not None:
        e = s.earliest
        out["earliest_stop_round"] = e.ticket.round
        out["earliest_stop_iteration"] = e.ticket.early_stop.mean
        out["earliest_stop_speedup_vs_dense"] = e.factor_vs_dense
        out["earliest_stop_dense_minus_ticket"] = difference_json(e.vs_dense)
    if s.best is not None:
        b = s.best
        out["best_ticket_round"] = b.ticket.round
        out["best_ticket_test_accuracy"] = b.ticket.accuracy.mean
        out["best_ticket_gain_pp"] = difference_json(b.vs_dense)
        out["test_best_ticket_round"] = b.test_best.round
    f = s.floor
    out["sparsest_matching_round"] = f.ticket.round if f else None
    out["sparsest_matching_percent_remaining"] = f.ticket.percent_remaining if f else None
    out["sparsest_matching_is_sparsest_run"] = f.is_sparsest_run if f else None
    out["sparsest_matching_gain_pp"] = difference_json(f.vs_dense) if f else None
    # Per (condition, round): the two means a reader compares, one column each in
    # `dvc exp show`. Everything else per cell is in statistics.json (`statistics_json`).
    out["by_round"] = {
        f"{c.condition}_{round_name(c.round)}": {
            "early_stop": c.early_stop.mean,
            "test_acc": c.accuracy.mean,
        }
        for c in all_cells
    }
    return out


def pick_json(p: Pick) -> dict[str, Any]:
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


# -------------------------------------------------------------------------- report


FIGURE_CAPTIONS: dict[str, str] = {
    "accuracy_vs_remaining": "Test accuracy at the early-stop iteration vs % of weights remaining",
    "early_stop_vs_remaining": "Early-stop iteration vs % of weights remaining",
    "learning_curves": "Test accuracy during training for selected pruning levels",
    "density_by_round": "Density of each layer by pruning round",
}


def figure_caption(name: str) -> str:
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    place = paths.parse_mask_figure(name)
    if place:
        rnd, kind = place
        if kind == "fc1_mask":
            what = "first-layer mask (input pixels × hidden units)"
        elif kind == "pixel_map":
            what = "fc1 connections kept per input pixel (28×28)"
        else:  # a conv layer: `plots.conv_mask_figure`
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


def preamble(s: Summary) -> str:
    """How every number below was computed: units, intervals (with their measured
    coverage), the verdicts' rules and the censoring window."""
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
    parts = [
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
        "(`lottery.statistics`).",
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
    out = [f"# {title(params)}", "", preamble(summary), "", _runs_line(all_cells), ""]
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
    """The report, the dvc plots tables and summary.json, each written atomically (runs
    censored under the summary's window)."""
    from lottery.report import figures as plots

    runs = results.censor(runs, summary.window)
    write_report(report_path, text)
    plots.write_dvc_plot_tables(plots.dvc_plot_rows(runs), plots_dir)
    all_cells = cells(runs)
    io.write_json(summary_path, summary_json(summary, all_cells))
    io.write_json(
        Path(summary_path).with_name(STATISTICS_FILE), statistics_json(summary, all_cells)
    )


#: Beside summary.json: the per-cell statistics and differences (`statistics_json`).
STATISTICS_FILE = "statistics.json"

_PROVENANCE = re.compile(r"^- (params hash|git revision): `([^`]*)`$", re.MULTILINE)


def regenerate(root: str | Path) -> Path:
    """Rewrite a kept study's report from its metrics, without training.

    `root` holds `metrics/`, `params.yaml` and `figures/` (such as
    `reports/results/lenet-5trials-10k`). The figures drawn from metrics alone are
    redrawn; the others (learning curves, masks) are kept. The training run's params hash
    and git revision are carried over from the existing report.
    """
    from lottery.report import figures as plots

    root = Path(root)
    metrics = results.load_metrics(root)
    runs = results.runs_frame(metrics)
    plots.metric_figures(metrics, root / "figures")
    old = (root / "report.md").read_text() if (root / "report.md").is_file() else ""
    provenance = dict(_PROVENANCE.findall(old))
    params = yaml.safe_load((root / "params.yaml").read_text())
    settings = {k: v for k, v in params.items() if k != "pipeline"}
    summary = summary_for(runs, settings)
    text = render_report(
        runs,
        figure_order(root / "figures"),
        settings,
        provenance.get("params hash", "unknown"),
        provenance.get("git revision", "unknown"),
        root,
    )
    write_outputs(runs, text, summary, root / "report.md", root / "plots", root / "summary.json")
    return root / "report.md"


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m lottery.report.text DIR...`: regenerate each kept study's report."""
    import argparse

    from lottery.core.errors import UserError, guarded

    ap = argparse.ArgumentParser(
        prog="python -m lottery.report.text",
        description="Regenerate kept studies' reports (reports/results/NAME) from their "
        "metrics, without training.",
    )
    ap.add_argument(
        "study", nargs="+", type=Path, help="a kept study's directory (metrics/, params.yaml)"
    )
    args = ap.parse_args(argv)

    def body() -> None:
        for root in args.study:
            if not (root / "params.yaml").is_file() or not (root / "metrics").is_dir():
                raise UserError(
                    f"{root}: not a kept study (it needs metrics/ and params.yaml, as "
                    "reports/results/NAME has)."
                )
            print(f"wrote {regenerate(root)}")

    raise SystemExit(guarded(body, "python -m lottery.report.text"))


if __name__ == "__main__":
    main()
