"""The Markdown report: every number and every sentence is computed from the metrics.

Nothing here is a hand-written claim. `compute_summary` derives the facts (with the
numbers tests can check); `summary_claims` renders them as sentences whose wording
follows the numbers, under four rules:

- **Censoring.** A run that hit the horizon with its minimum validation loss in the last
  two evaluations is censored (`lottery.results`). Tables write its cell's early-stop
  iteration as a lower bound (`≥ 9660 …, 2/5 censored`) and star its accuracies; every
  sentence that uses such a cell says so.
- **Picks on validation.** The "best" ticket is the round with the highest mean
  validation accuracy at early stop; its test accuracy is then reported.
- **Uncertainty.** Cells carry a 95% bootstrap interval over trials; ticket − dense and
  ticket − control differences are paired by trial, with a 95% interval. A difference is
  called real only when its interval excludes 0 ("no clear difference" otherwise); with
  fewer than 3 trials the text says that no interval is possible.
- **Floors.** When the sparsest matching ticket is the sparsest round run, the report
  says "down to at least X% (the sparsest round run)".

Accuracies are fractions in the metrics files and percentages (2 decimals) here;
accuracy differences are in percentage points (pp).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lottery import io, paths, results
from lottery.params import network_and_dataset
from lottery.paths import round_name
from lottery.results import Difference, Stats

ES = "early_stop_iteration"
ACC = "test_accuracy_at_early_stop"
ACC_STOP = "test_accuracy_at_stop"
VAL_ACC = "val_accuracy_at_early_stop"
#: The statistics tabulated for each (condition, round).
CONTROL_LABELS: dict[str, str] = {
    "ticket": "ticket",
    "reinit": "reinit control",
    "random": "random-prune control",
}
GAP_LABELS: dict[str, str] = {"reinit": "reinit", "random": "random prune"}
#: Default tolerance (percentage points) for "a ticket matches the dense accuracy":
#: 0.0 means its mean test accuracy at early stop is at least the dense network's mean.
DEFAULT_TOLERANCE_PP = 0.0
#: Guard against float noise when comparing means that should be equal.
_EPS = 1e-9
#: How the title names each dataset and network (a params file without `data.dataset` or
#: `model` predates them: LeNet-300-100 on MNIST).
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
NETWORK_TITLES = {"conv2": "Conv-2", "conv4": "Conv-4", "conv6": "Conv-6"}


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


# ----------------------------------------------------------------------- the facts


@dataclass(frozen=True)
class Cell:
    """One (condition, round): its runs' statistics (accuracies as fractions)."""

    condition: str
    round: int
    percent_remaining: float
    n_runs: int
    n_trials: int
    n_censored: int
    early_stop: Stats
    accuracy: Stats  # test accuracy at early stop
    accuracy_at_stop: Stats  # test accuracy when training stopped
    val_accuracy: Stats  # validation accuracy at early stop

    @property
    def censored(self) -> bool:
        return self.n_censored > 0


def cells(data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[Cell]:
    """Every (condition, round), ordered by condition then round."""
    table = results.cell_table(data, (ES, ACC, ACC_STOP, VAL_ACC))
    out = [
        Cell(
            condition=str(row["condition"]),
            round=int(row["round"]),
            percent_remaining=float(row["percent_remaining"]),
            n_runs=int(row["n_runs"]),
            n_trials=int(row["n_trials"]),
            n_censored=int(row["n_censored"]),
            early_stop=results.cell_stats(row, ES),
            accuracy=results.cell_stats(row, ACC),
            accuracy_at_stop=results.cell_stats(row, ACC_STOP),
            val_accuracy=results.cell_stats(row, VAL_ACC),
        )
        for row in table.to_dict("records")
    ]
    return sorted(out, key=lambda c: (results.condition_rank(c.condition), c.round))


@dataclass(frozen=True)
class EarliestStop:
    """The pruned ticket round with the smallest mean early-stop iteration."""

    ticket: Cell
    tied_rounds: tuple[int, ...]  # other rounds with the same mean early-stop iteration
    factor_vs_dense: float | None  # dense_es / ticket_es; None without dense or if es == 0
    vs_dense: Difference | None  # dense − ticket early-stop iteration, paired by trial


@dataclass(frozen=True)
class BestTicket:
    """The pruned ticket round with the highest mean validation accuracy at early stop."""

    ticket: Cell
    tied_rounds: tuple[int, ...]
    vs_dense: Difference | None  # ticket − dense test accuracy at early stop, pp
    test_best: Cell  # the round a pick on test accuracy would have chosen


@dataclass(frozen=True)
class Floor:
    """The sparsest ticket whose mean test accuracy is at least dense's minus a tolerance."""

    ticket: Cell
    is_sparsest_run: bool  # it is the sparsest ticket round that was run
    sparser_rounds: tuple[int, ...]  # sparser ticket rounds (which do not match)
    failing_rounds: tuple[int, ...]  # denser ticket rounds that do not match
    vs_dense: Difference | None  # ticket − dense, pp


@dataclass(frozen=True)
class ControlGap:
    """Ticket minus control, test accuracy at early stop, pp, paired by trial."""

    round: int
    percent_remaining: float
    control: Cell
    difference: Difference
    ticket: Cell


@dataclass(frozen=True)
class Summary:
    dense: Cell | None
    tickets: tuple[Cell, ...]  # pruned rounds (>= 1), by round
    controls: dict[str, tuple[Cell, ...]]  # control condition -> its rounds
    earliest: EarliestStop | None  # None when there is no pruned ticket
    best: BestTicket | None
    tolerance_pp: float
    floor: Floor | None  # None if no ticket matches (or no dense)
    gaps: tuple[ControlGap, ...]
    n_runs: int
    censored: tuple[Cell, ...]  # cells with at least one censored run

    @property
    def n_censored(self) -> int:
        return sum(c.n_censored for c in self.censored)


def _sparsest(candidates: Sequence[Cell]) -> Cell:
    """Fewest weights remaining; the later round on equal %."""
    return min(candidates, key=lambda c: (c.percent_remaining, -c.round))


def _pick(tickets: Sequence[Cell], value: Any) -> tuple[Cell, tuple[int, ...]]:
    """The ticket with the highest `value` (sparsest among ties) and the other tied rounds."""
    top = max(value(c) for c in tickets)
    tied = [c for c in tickets if abs(value(c) - top) <= _EPS]
    pick = _sparsest(tied)
    return pick, tuple(c.round for c in tied if c.round != pick.round)


def _earliest(runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell | None) -> EarliestStop:
    pick, tied = _pick(tickets, lambda c: -c.early_stop.mean)
    factor = vs = None
    if dense is not None:
        if pick.early_stop.mean > 0:
            factor = dense.early_stop.mean / pick.early_stop.mean
        vs = results.paired_difference(runs, ES, ("ticket", 0), ("ticket", pick.round))
    return EarliestStop(pick, tied, factor, vs)


def _best(runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell | None) -> BestTicket:
    pick, tied = _pick(tickets, lambda c: c.val_accuracy.mean)
    test_best, _ = _pick(tickets, lambda c: c.accuracy.mean)
    vs = None
    if dense is not None:
        vs = results.paired_difference(
            runs, ACC, ("ticket", pick.round), ("ticket", 0), scale=100.0
        )
    return BestTicket(pick, tied, vs, test_best)


def _floor(
    runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell, tolerance_pp: float
) -> Floor | None:
    threshold_pp = 100.0 * dense.accuracy.mean - tolerance_pp
    matching = [c for c in tickets if 100.0 * c.accuracy.mean >= threshold_pp - _EPS]
    if not matching:
        return None
    floor = _sparsest(matching)
    key = (floor.percent_remaining, -floor.round)
    sparser = tuple(c.round for c in tickets if (c.percent_remaining, -c.round) < key)
    failing = tuple(c.round for c in tickets if c not in matching and c.round not in sparser)
    vs = results.paired_difference(runs, ACC, ("ticket", floor.round), ("ticket", 0), scale=100.0)
    return Floor(floor, not sparser, sparser, failing, vs)


def _gaps(runs: pd.DataFrame, tickets: Sequence[Cell], controls: Mapping[str, Sequence[Cell]]):
    gaps: list[ControlGap] = []
    for t in tickets:
        for cond, cond_cells in controls.items():
            control = next((c for c in cond_cells if c.round == t.round), None)
            if control is None:
                continue
            diff = results.paired_difference(
                runs, ACC, ("ticket", t.round), (cond, t.round), scale=100.0
            )
            if diff is not None:
                gaps.append(ControlGap(t.round, t.percent_remaining, control, diff, t))
    return tuple(gaps)


def compute_summary(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
    tolerance_pp: float = DEFAULT_TOLERANCE_PP,
) -> Summary:
    """The facts behind the summary sentences (see the dataclasses for the definitions).

    `data` is a runs frame (`lottery.results`) or metrics dicts. Ties (equal means) are
    broken towards the sparsest round, and the other tied rounds are recorded.
    """
    if tolerance_pp < 0:
        raise ValueError(f"tolerance_pp must be >= 0, got {tolerance_pp}")
    runs = results.as_runs(data)
    all_cells = cells(runs)
    ticket = {c.round: c for c in all_cells if c.condition == "ticket"}
    dense = ticket.get(0)
    tickets = tuple(ticket[r] for r in sorted(ticket) if r >= 1)
    controls: dict[str, tuple[Cell, ...]] = {}
    for c in all_cells:
        if c.condition != "ticket":
            controls[c.condition] = (*controls.get(c.condition, ()), c)
    return Summary(
        dense=dense,
        tickets=tickets,
        controls=controls,
        earliest=_earliest(runs, tickets, dense) if tickets else None,
        best=_best(runs, tickets, dense) if tickets else None,
        tolerance_pp=tolerance_pp,
        floor=_floor(runs, tickets, dense, tolerance_pp) if tickets and dense else None,
        gaps=_gaps(runs, tickets, controls),
        n_runs=len(runs),
        censored=tuple(c for c in all_cells if c.censored),
    )


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


def difference_text(d: Difference, unit: str, decimals: int = 2) -> str:
    """'+0.57 pp (95% interval +0.30 to +0.81, 5 trials)' or '… (2 trials: no interval
    possible)'."""
    value = f"{_signed(d.mean, decimals)} {unit}"
    if d.ci_low is None or d.ci_high is None:
        return f"{value} ({_trials(d.n_trials)}: no interval possible)"
    return (
        f"{value} (95% interval {_signed(d.ci_low, decimals)} to "
        f"{_signed(d.ci_high, decimals)}, {_trials(d.n_trials)})"
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
    """'mean (min–max) [95% low, high]'; '[no interval: 2 trials]' with < 3 trials; the
    value alone for a single run."""
    if n_runs == 1:
        return str(fmt(s.mean))
    text = f"{fmt(s.mean)} ({fmt(s.min)}–{fmt(s.max)})"
    if s.ci_low is None or s.ci_high is None:
        return f"{text} [no interval: {_trials(n_trials)}]"
    return f"{text} [{fmt(s.ci_low)}, {fmt(s.ci_high)}]"


def markdown_table(all_cells: Sequence[Cell]) -> str:
    """A Markdown table, one row per (condition, round) (see `table_cell` for the cells).

    Censored rows: the early-stop cell starts with "≥" and ends with "k/n censored", and
    the accuracy cells end with "*" (the accuracy may be understated).
    """
    lines = [
        "| condition | % weights remaining | early-stop iteration "
        "| test acc. at early stop | test acc. when training stopped |",
        "|---|---:|---:|---:|---:|",
    ]
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


def _censoring_claim(s: Summary) -> str:
    if not s.censored:
        return (
            "No run is censored: every run reached its minimum validation loss before the "
            "last two evaluations of its training, or was stopped by patience."
        )
    by_cond: dict[str, list[Cell]] = {}
    for c in s.censored:
        by_cond.setdefault(c.condition, []).append(c)
    parts = []
    for cond, cs in by_cond.items():
        word = "round" if len(cs) == 1 else "rounds"
        listed = ", ".join(f"{c.round} ({c.n_censored}/{c.n_runs})" for c in cs)
        parts.append(f"{CONTROL_LABELS.get(cond, cond)} {word} {listed}")
    return (
        f"{s.n_censored} of {s.n_runs} runs are censored: training reached its last "
        f"iteration with the minimum validation loss in the last two evaluations "
        f"({'; '.join(parts)}). Their early-stop iterations are lower bounds and their "
        f"accuracies may be understated."
    )


def _earliest_claim(s: Summary, e: EarliestStop) -> str:
    t, dense = e.ticket, s.dense
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
    censored = [c for c in (t, dense) if c is not None and c.censored]
    if censored:
        who = " and ".join(
            f"{'dense' if c.round == 0 else 'ticket'} {_censored_note(c)}" for c in censored
        )
        text += f" Censored runs ({who}) make these early-stop iterations lower bounds."
    return text


def _best_claim(s: Summary, b: BestTicket) -> str:
    t, dense = b.ticket, s.dense
    text = (
        f"Chosen by mean validation accuracy at early stop, the best ticket is "
        f"{_where(t)}{_ties(b.tied_rounds)}, with {_pct(t.val_accuracy.mean)} on validation; "
        f"its mean test accuracy at early stop is {_pct(t.accuracy.mean)}"
    )
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


def _floor_claim(s: Summary) -> str:
    dense = s.dense
    if dense is None:
        raise ValueError("a floor claim needs the dense round")
    rule = (
        f"mean test accuracy at early stop at least the dense network's "
        f"{_pct(dense.accuracy.mean)} minus {s.tolerance_pp:.2f} pp"
    )
    f = s.floor
    if f is None:
        return f"No pruned ticket matches dense ({rule})."
    t = f.ticket
    pct = fmt_percent_remaining(t.percent_remaining)
    if f.is_sparsest_run:
        text = f"Tickets match dense ({rule}) down to at least {pct}% (the sparsest round run)"
    else:
        text = f"Tickets match dense ({rule}) down to {pct}%"
    text += f": round {t.round} has {_pct(t.accuracy.mean)}"
    if f.vs_dense is not None:
        text += ", ticket − dense = " + _with_verdict(
            f.vs_dense, "pp", "the ticket is more accurate", "the ticket is less accurate"
        )
    text += "."
    if f.sparser_rounds:
        text += f" The sparser {_rounds(f.sparser_rounds)} not match."
    if f.failing_rounds:
        text += f" Denser {_rounds(f.failing_rounds)} not match either."
    return text + _censored_tickets(dense, t)


def _rounds(rounds: Sequence[int]) -> str:
    """'round 3 does' / 'rounds 3, 4 do'."""
    if len(rounds) == 1:
        return f"round {rounds[0]} does"
    return f"rounds {', '.join(map(str, rounds))} do"


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
        part = f"ticket − {label} = " + _with_verdict(
            g.difference, "pp", "the ticket is more accurate", "the ticket is less accurate"
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
    tolerance_pp: float = DEFAULT_TOLERANCE_PP,
) -> list[str]:
    """Sentences rendered from `compute_summary` (pass a Summary to reuse one)."""
    s = data if isinstance(data, Summary) else compute_summary(data, tolerance_pp)
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


# --------------------------------------------------------------- summary.json


def _stats_json(s: Stats, scale: float = 1.0) -> dict[str, float | None]:
    t = s.scaled(scale)
    return {"mean": t.mean, "min": t.min, "max": t.max, "ci_low": t.ci_low, "ci_high": t.ci_high}


def _difference_json(d: Difference | None) -> dict[str, float | int | None] | None:
    if d is None:
        return None
    return {"mean": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high, "n_trials": d.n_trials}


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
        out["earliest_stop_dense_minus_ticket"] = _difference_json(e.vs_dense)
    if s.best is not None:
        b = s.best
        out["best_ticket_round"] = b.ticket.round
        out["best_ticket_test_accuracy"] = b.ticket.accuracy.mean
        out["best_ticket_gain_pp"] = _difference_json(b.vs_dense)
        out["test_best_ticket_round"] = b.test_best.round
    f = s.floor
    out["sparsest_matching_round"] = f.ticket.round if f else None
    out["sparsest_matching_percent_remaining"] = f.ticket.percent_remaining if f else None
    out["sparsest_matching_is_sparsest_run"] = f.is_sparsest_run if f else None
    out["sparsest_matching_gain_pp"] = _difference_json(f.vs_dense) if f else None
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


def statistics_json(s: Summary, all_cells: Sequence[Cell]) -> dict[str, Any]:
    """Every cell's statistics (mean, min-max, 95% interval, censored runs) and every
    ticket - control difference: the detail behind summary.json, an output, not a metric."""
    gaps: dict[str, dict[str, Any]] = {}
    for g in s.gaps:
        gaps.setdefault(g.control.condition, {})[round_name(g.round)] = _difference_json(
            g.difference
        )
    return {
        "cells": {
            cond: {round_name(c.round): cell_json(c) for c in all_cells if c.condition == cond}
            for cond in dict.fromkeys(c.condition for c in all_cells)
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


PREAMBLE = f"""\
All numbers below are computed from the pipeline's metrics files. Accuracies are test
accuracies in %, taken at the early-stop iteration (minimum validation loss) unless
marked "when training stopped"; pp = percentage points. With several runs per cell the
table shows mean (min–max) [95% interval]: a percentile bootstrap of the mean over trials
({results.BOOTSTRAP_SAMPLES:,} resamples, seed {results.BOOTSTRAP_SEED}); with fewer than \
{results.MIN_INTERVAL_TRIALS} trials no interval is possible.
Ticket − dense and ticket − control differences are paired by trial; a difference is
called real only when its 95% interval excludes 0. A run is censored when training
reached its last iteration with the minimum validation loss in the last two evaluations:
its early-stop iteration is a lower bound (≥, with the count of censored runs) and its
accuracies (*) may be understated."""


def render_report(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
    figures: Mapping[str, Path],
    params: Mapping[str, Any],
    study_hash: str,
    git_commit: str,
    report_dir: str | Path,
    tolerance_pp: float = DEFAULT_TOLERANCE_PP,
) -> str:
    """The whole report as Markdown (deterministic: no timestamps, no run ids)."""
    runs = results.as_runs(data)
    summary = compute_summary(runs, tolerance_pp)
    all_cells = cells(runs)
    out = [f"# {title(params)}", "", PREAMBLE, "", _runs_line(all_cells), "", "## Summary", ""]
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
    """The report, the dvc plots tables and summary.json, each written atomically."""
    from lottery import plots

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
    from lottery import plots

    root = Path(root)
    metrics = results.load_metrics(root)
    runs = results.runs_frame(metrics)
    plots.metric_figures(metrics, root / "figures")
    old = (root / "report.md").read_text() if (root / "report.md").is_file() else ""
    provenance = dict(_PROVENANCE.findall(old))
    params = yaml.safe_load((root / "params.yaml").read_text())
    settings = {k: v for k, v in params.items() if k != "pipeline"}
    summary = compute_summary(runs)
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
    """`python -m lottery.report DIR...`: regenerate each kept study's report."""
    for root in argv if argv is not None else sys.argv[1:]:
        print(f"wrote {regenerate(root)}")


if __name__ == "__main__":
    main()
