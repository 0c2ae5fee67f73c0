"""The report's sentences: every one is computed from the metrics.

Nothing here is a hand-written claim. `lottery.analysis.inference.compute_summary`
derives the facts (with the numbers tests can check); `summary_claims` renders them as
sentences whose wording follows the numbers, under these rules (`lottery.analysis.inference`
has them in full):

- **Censoring.** A run that stopped less than W iterations after its minimum validation
  loss is censored, W being the longest wait between new minima in the committed patience
  evidence (`results.evidence_window`). Tables write its cell's early-stop iteration as a
  lower bound (`≥ 9660 …, 2/5 censored`) and star its accuracies; every sentence that
  uses such a cell says so.
- **Uncertainty.** A cell's mean, min–max and 95% interval are all over trial means; the
  interval is Student-t (its coverage, measured by `lottery.analysis.statistics`, is
  stated in the preamble). Differences are paired by trial.
- **Picks on validation, with their margin.** The "best" ticket is the round with the
  highest mean validation accuracy at early stop; it and the earliest-stopping ticket come
  with their runner-up, the margin and the share of bootstrap resamples of the trials
  that pick them ("no clear best among rounds …" below 80%).
- **Match with a margin.** A ticket matches dense, falls short, or is undetermined, by its
  ticket − dense interval against −M (`match_margin`); the floor is read from those.
- **Multiplicity.** Ticket − reinit and ticket − random are one family of tests each,
  over the rounds, with Holm's adjustment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lottery.analysis import statistics
from lottery.analysis.inference import (
    DEFAULT_MARGIN_PP,
    FALLS_SHORT,
    MATCHES,
    BestTicket,
    Cell,
    ControlGap,
    EarliestStop,
    Match,
    Pick,
    Summary,
    compute_summary,
)
from lottery.analysis.results import CensoringWindow
from lottery.core import conditions
from lottery.report.formatting import (
    censored_note,
    difference_text,
    early_stop_value,
    fmt_percent_remaining,
    gap_text,
    pct,
    share,
    ties,
    where,
    with_verdict,
)


def _short(name: str) -> str:
    """A condition's name in gap names ('random prune'); an unknown name is its own."""
    return conditions.REGISTRY[name].short if name in conditions.REGISTRY else name


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
        parts.append(f"{conditions.label(cond)} {word} {_censored_rounds(cs)}")
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
        f" {share(p.share)} of {statistics.RESAMPLES:,} bootstrap resamples of the trials "
        f"pick round {p.ticket.round}"
    )
    if p.clear:
        return text
    listed = ", ".join(f"{r} ({share(v)})" for r, v in p.contenders())
    return f"{text}: no clear {what} among rounds {listed}"


def _earliest_claim(s: Summary, e: EarliestStop) -> str:
    t, dense, p = e.ticket, s.dense, e.pick
    text = (
        f"The earliest-stopping ticket is {where(t)}{ties(e.tied_rounds)}: mean early-stop "
        f"iteration {early_stop_value(t)}"
    )
    if dense is not None:
        text += f" vs {early_stop_value(dense)} for the dense network"
        if e.factor_vs_dense is not None:
            text += f", a factor of {e.factor_vs_dense:.1f} (dense ÷ ticket)"
        if e.vs_dense is not None:
            text += "; dense − ticket = " + with_verdict(
                e.vs_dense,
                "iterations",
                "the ticket stops earlier",
                "the ticket stops later",
                decimals=0,
            )
    text += "."
    if p.runner_up is not None:
        text += (
            f" Runner-up: round {p.runner_up.round} ({early_stop_value(p.runner_up)}, "
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
            f"{'dense' if c.round == 0 else 'ticket'} {censored_note(c)}" for c in censored
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
        f"{where(t)}{ties(b.tied_rounds)}, with {pct(t.val_accuracy.mean)} on validation"
    )
    if p.runner_up is not None:
        text += (
            f"; runner-up: round {p.runner_up.round}, {_validation_margin(s, p)} behind;"
            f"{_pick_words(p, 'best')}"
        ).rstrip(";")
    text += f". Its mean test accuracy at early stop is {pct(t.accuracy.mean)}"
    if dense is not None:
        text += f" vs {pct(dense.accuracy.mean)} for the dense network"
        if b.vs_dense is not None:
            text += "; ticket − dense = " + with_verdict(
                b.vs_dense, "pp", "the ticket is more accurate", "the ticket is less accurate"
            )
    text += "."
    if b.test_best.round != t.round:
        text += (
            f" Round {b.test_best.round} has the highest mean test accuracy "
            f"({pct(b.test_best.accuracy.mean)}), but a round picked on test accuracy "
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
    kept = fmt_percent_remaining(t.percent_remaining)
    if f.is_sparsest_run:
        text = f"Tickets match dense ({rule}) down to at least {kept}% (the sparsest round run)"
    elif f.exact:
        text = f"Tickets match dense ({rule}) down to {kept}%"
    else:
        text = f"Tickets match dense ({rule}) down to at least {kept}%"
    text += f": round {t.round} has {pct(t.accuracy.mean)} vs {pct(dense.accuracy.mean)}"
    if f.vs_dense is not None:
        text += ", ticket − dense = " + difference_text(f.vs_dense, "pp")
    text += "."
    if f.sparser:
        text += f" Sparser: {_verdict_list(f.sparser)}."
    if f.failing:
        text += f" Denser: {_verdict_list(f.failing)}."
    return text + _censored_tickets(dense, t)


def _control_claim(cond: str, cs: Sequence[Cell]) -> str:
    name = conditions.label(cond)
    first, last = cs[0], cs[-1]

    def at(c: Cell) -> str:
        note = f"; {censored_note(c)}" if c.censored else ""
        return f"at {fmt_percent_remaining(c.percent_remaining)}% (round {c.round}{note})"

    if first is last:
        return (
            f"The {name} {at(first)}: mean early-stop iteration {early_stop_value(first)}, "
            f"mean test accuracy at early stop {pct(first.accuracy.mean)}."
        )
    return (
        f"The {name}'s mean early-stop iteration goes from {early_stop_value(first)} "
        f"{at(first)} to {early_stop_value(last)} {at(last)}, and its mean test accuracy "
        f"at early stop from {pct(first.accuracy.mean)} to {pct(last.accuracy.mean)}."
    )


def _gap_claim(rnd: int, percent: float, gaps: Sequence[ControlGap]) -> str:
    parts = []
    for g in gaps:
        name = _short(g.control.condition)
        part = f"ticket − {name} = " + gap_text(
            g, "the ticket is more accurate", "the ticket is less accurate"
        )
        if g.control.censored:
            part += f" ({name}: {censored_note(g.control)}, its accuracy may be understated)"
        parts.append(part)
    text = (
        f"Round {rnd} ({fmt_percent_remaining(percent)}% remaining), test accuracy at early stop: "
        f"{'; '.join(parts)}."
    )
    return text + _censored_tickets(gaps[0].ticket)


def _censored_tickets(*tickets: Cell | None) -> str:
    """' The ticket of round 3 has 1/5 runs censored: …' for each censored ticket cell."""
    return "".join(
        f" The {'dense network' if t.round == 0 else f'ticket of round {t.round}'} has "
        f"{censored_note(t)}: its accuracy may be understated."
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
            f"{early_stop_value(dense)}, mean test accuracy at early stop "
            f"{pct(dense.accuracy.mean)}; there are no pruned tickets to compare."
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
