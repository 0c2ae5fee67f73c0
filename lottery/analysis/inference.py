"""The report's facts: cells, picks among rounds, match verdicts and ticket − control gaps.

`compute_summary` derives them from a runs frame (`lottery.analysis.results`);
`lottery.report` renders them as sentences and `summary_json` / `statistics_json` as
numbers. The rules:

- **Censoring** under a window W (`censoring.CensoringWindow`, from the patience evidence):
  a run stopped less than W iterations after its minimum validation loss is censored.
- **Intervals** are Student-t over trial means; differences are paired by trial
  (`lottery.analysis.statistics` for the coverage that chose the method; `cells`).
- **Picks** (the best ticket on validation accuracy, the earliest-stopping ticket) carry
  their runner-up, the margin, and the share of bootstrap resamples of the trials that
  pick the same round (`lottery.analysis.picks`); below `CLEAR_SHARE` there is no clear
  pick.
- **Match** with a margin M (pp): a ticket matches dense when its ticket − dense interval
  lies above −M, falls short when it lies below −M, and is undetermined otherwise.
- **Gaps** (ticket − reinit, ticket − random) are one family of tests per control, over
  the rounds, with Holm's adjustment; a gap is called real when its adjusted p is below
  `ALPHA` and its interval, as printed, excludes 0.

The cells' and picks' names used by the report modules are gathered here too (`__all__`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lottery.analysis import statistics
from lottery.analysis.cells import (
    ACC,
    ACC_STOP,
    EPS,
    ES,
    VAL_ACC,
    Cell,
    Difference,
    cells,
    paired_difference,
)
from lottery.analysis.censoring import CensoringWindow, censor
from lottery.analysis.frames import as_runs
from lottery.analysis.patience import default_window
from lottery.analysis.picks import CLEAR_SHARE, BestTicket, EarliestStop, Pick, best, earliest
from lottery.core.conditions import TICKET

__all__ = [
    "ACC",
    "ACC_STOP",
    "ALPHA",
    "CLEAR_SHARE",
    "DEFAULT_MARGIN_PP",
    "ES",
    "FALLS_SHORT",
    "MATCHES",
    "UNDETERMINED",
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
    "gap_sign",
    "match_verdict",
]

#: Default match margin (pp): about one trial-to-trial standard deviation of the dense
#: LeNet's test accuracy in the committed studies (0.17–0.27 pp), i.e. a ticket this close
#: to dense is as close as another dense trial typically is (25 of 10,000 test examples).
DEFAULT_MARGIN_PP = 0.25
#: Family-wise error rate of the gap families (Holm).
ALPHA = 0.05
MATCHES, FALLS_SHORT, UNDETERMINED = "matches", "falls short", "undetermined"


# --------------------------------------------------------------------------- match


@dataclass(frozen=True)
class Match:
    """One pruned ticket round against dense: ticket − dense (pp) and its verdict."""

    ticket: Cell
    vs_dense: Difference | None
    verdict: str | None  # MATCHES, FALLS_SHORT, UNDETERMINED; None without an interval

    @property
    def round(self) -> int:
        return self.ticket.round


def match_verdict(d: Difference | None, margin_pp: float, decimals: int = 2) -> str | None:
    """Against −margin, with the interval's ends as printed (`decimals`)."""
    if d is None or d.ci_low is None or d.ci_high is None:
        return None
    if round(d.ci_low, decimals) > -margin_pp + EPS:
        return MATCHES
    if round(d.ci_high, decimals) < -margin_pp - EPS:
        return FALLS_SHORT
    return UNDETERMINED


@dataclass(frozen=True)
class Floor:
    """The sparsest ticket that matches dense, and the verdicts around it."""

    ticket: Cell
    is_sparsest_run: bool  # it is the sparsest ticket round that was run
    sparser: tuple[Match, ...]  # sparser ticket rounds (none matches)
    failing: tuple[Match, ...]  # denser ticket rounds that do not match
    vs_dense: Difference | None  # ticket − dense, pp

    @property
    def sparser_rounds(self) -> tuple[int, ...]:
        return tuple(m.round for m in self.sparser)

    @property
    def failing_rounds(self) -> tuple[int, ...]:
        return tuple(m.round for m in self.failing)

    @property
    def exact(self) -> bool:
        """Every sparser round falls short: the floor is where matching ends."""
        return bool(self.sparser) and all(m.verdict == FALLS_SHORT for m in self.sparser)


def _matches(runs: pd.DataFrame, tickets: Sequence[Cell], margin_pp: float) -> tuple[Match, ...]:
    out = []
    for t in tickets:
        d = paired_difference(runs, ACC, (TICKET.name, t.round), (TICKET.name, 0), scale=100.0)
        out.append(Match(t, d, match_verdict(d, margin_pp)))
    return tuple(out)


def _floor(matches: Sequence[Match]) -> Floor | None:
    matching = [m for m in matches if m.verdict == MATCHES]
    if not matching:
        return None
    floor = min(matching, key=lambda m: (m.ticket.percent_remaining, -m.round))
    key = (floor.ticket.percent_remaining, -floor.round)
    sparser = tuple(m for m in matches if (m.ticket.percent_remaining, -m.round) < key)
    failing = tuple(m for m in matches if m.verdict != MATCHES and m not in sparser)
    return Floor(floor.ticket, not sparser, sparser, failing, floor.vs_dense)


# ---------------------------------------------------------------------------- gaps


@dataclass(frozen=True)
class ControlGap:
    """Ticket minus control, test accuracy at early stop, pp, paired by trial."""

    round: int
    percent_remaining: float
    control: Cell
    difference: Difference
    ticket: Cell
    p_holm: float | None = None  # Holm-adjusted over the control's rounds
    family: int = 1  # the number of tests in that family


def gap_sign(g: ControlGap, decimals: int = 2) -> int:
    """+1 / -1 when the gap is real (Holm p < ALPHA and the printed interval excludes
    0), 0 when it is not, and 0 without an interval."""
    d = g.difference
    if g.p_holm is None or d.ci_low is None or d.ci_high is None or g.p_holm >= ALPHA:
        return 0
    if round(d.ci_low, decimals) > 0:
        return 1
    if round(d.ci_high, decimals) < 0:
        return -1
    return 0


def _gaps(
    runs: pd.DataFrame, tickets: Sequence[Cell], controls: Mapping[str, Sequence[Cell]]
) -> tuple[ControlGap, ...]:
    by_control: dict[str, list[ControlGap]] = {}
    for t in tickets:
        for cond, cond_cells in controls.items():
            control = next((c for c in cond_cells if c.round == t.round), None)
            if control is None:
                continue
            ticket_cell, control_cell = (TICKET.name, t.round), (cond, t.round)
            diff = paired_difference(runs, ACC, ticket_cell, control_cell, scale=100.0)
            if diff is not None:
                gap = ControlGap(t.round, t.percent_remaining, control, diff, t)
                by_control.setdefault(cond, []).append(gap)
    adjusted: dict[tuple[str, int], ControlGap] = {}
    for cond, gaps in by_control.items():
        family = sum(g.difference.p_value is not None for g in gaps)
        holm = statistics.holm([g.difference.p_value for g in gaps])
        for g, p in zip(gaps, holm, strict=True):
            adjusted[(cond, g.round)] = ControlGap(*_fields(g), p_holm=p, family=family)
    return tuple(
        adjusted[(cond, t.round)]
        for t in tickets
        for cond in controls
        if (cond, t.round) in adjusted
    )


def _fields(g: ControlGap) -> tuple[int, float, Cell, Difference, Cell]:
    return g.round, g.percent_remaining, g.control, g.difference, g.ticket


# ------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Summary:
    dense: Cell | None
    tickets: tuple[Cell, ...]  # pruned rounds (>= 1), by round
    controls: dict[str, tuple[Cell, ...]]  # control condition -> its rounds
    earliest: EarliestStop | None  # None when there is no pruned ticket
    best: BestTicket | None
    margin_pp: float
    matches: tuple[Match, ...]  # every pruned ticket round against dense (empty: no dense)
    floor: Floor | None  # None if no ticket matches (or no dense)
    gaps: tuple[ControlGap, ...]
    n_runs: int
    censored: tuple[Cell, ...]  # cells with at least one censored run
    window: CensoringWindow
    validation_size: int | None = None  # examples per validation evaluation, when known

    @property
    def n_censored(self) -> int:
        return sum(c.n_censored for c in self.censored)


def compute_summary(
    data: pd.DataFrame | Sequence[Mapping[str, Any]],
    margin_pp: float = DEFAULT_MARGIN_PP,
    window: CensoringWindow | None = None,
    validation_size: int | None = None,
) -> Summary:
    """The facts behind the summary sentences (see the dataclasses for the definitions).

    `data` is a runs frame (`lottery.analysis.results`) or metrics dicts; its runs are censored
    under `window` (default: `patience.default_window()`, the patience evidence's). Ties
    (equal means) are broken towards the sparsest round, and the other tied rounds are
    recorded.
    """
    if margin_pp < 0:
        raise ValueError(f"margin_pp must be >= 0, got {margin_pp}")
    window = default_window() if window is None else window
    runs = censor(as_runs(data), window)
    all_cells = cells(runs)
    ticket = {c.round: c for c in all_cells if c.condition == TICKET.name}
    dense = ticket.get(0)
    tickets = tuple(ticket[r] for r in sorted(ticket) if r >= 1)
    controls: dict[str, tuple[Cell, ...]] = {}
    for c in all_cells:
        if c.condition != TICKET.name:
            controls[c.condition] = (*controls.get(c.condition, ()), c)
    matches = _matches(runs, tickets, margin_pp) if dense is not None else ()
    return Summary(
        dense=dense,
        tickets=tickets,
        controls=controls,
        earliest=earliest(runs, tickets, dense) if tickets else None,
        best=best(runs, tickets, dense) if tickets else None,
        margin_pp=margin_pp,
        matches=matches,
        floor=_floor(matches),
        gaps=_gaps(runs, tickets, controls),
        n_runs=len(runs),
        censored=tuple(c for c in all_cells if c.censored),
        window=window,
        validation_size=validation_size,
    )
