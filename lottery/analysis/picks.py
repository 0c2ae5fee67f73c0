"""Picks among the pruned ticket rounds: the best ticket and the earliest-stopping one.

A pick carries its ties, its runner-up, the margin, and the share of bootstrap resamples
of the trials that pick the same round (`Pick`; `statistics.pick_shares`); below
`CLEAR_SHARE` there is no clear pick. Ties (equal means) go to the sparsest round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lottery.analysis import statistics
from lottery.analysis.cells import (
    ACC,
    CELL_STAT,
    EPS,
    ES,
    VAL_ACC,
    Cell,
    Difference,
    paired_difference,
    trial_values,
)
from lottery.core.conditions import TICKET

#: A pick chosen by fewer bootstrap resamples than this is "no clear best".
CLEAR_SHARE = 0.8
#: Rounds a pick's sentence names as contenders: picked by at least this share.
CONTENDER_SHARE = 0.05


@dataclass(frozen=True)
class Pick:
    """A round picked among the pruned tickets, and how close the pick was."""

    ticket: Cell
    tied_rounds: tuple[int, ...]  # other rounds with the same mean (the sparsest is picked)
    runner_up: Cell | None
    margin: float  # |pick − runner-up| of the picked mean (fraction or iterations)
    shares: dict[int, float] | None  # round -> share of bootstrap resamples picking it

    @property
    def share(self) -> float | None:
        return None if self.shares is None else self.shares.get(self.ticket.round, 0.0)

    @property
    def clear(self) -> bool:
        """Picked by at least `CLEAR_SHARE` of the resamples (False without them)."""
        return self.share is not None and self.share >= CLEAR_SHARE - EPS

    def contenders(self) -> list[tuple[int, float]]:
        """(round, share) picked by at least `CONTENDER_SHARE`, most picked first."""
        shares = self.shares or {}
        return sorted(
            ((r, s) for r, s in shares.items() if s >= CONTENDER_SHARE - EPS),
            key=lambda x: (-x[1], x[0]),
        )


def sparsest(candidates: Sequence[Cell]) -> Cell:
    """Fewest weights remaining; the later round on equal %."""
    return min(candidates, key=lambda c: (c.percent_remaining, -c.round))


def _top(tickets: Sequence[Cell], value: Callable[[Cell], float]) -> tuple[Cell, list[Cell]]:
    top = max(value(c) for c in tickets)
    tied = [c for c in tickets if abs(value(c) - top) <= EPS]
    return sparsest(tied), tied


def per_trial_matrix(runs: pd.DataFrame, key: str, tickets: Sequence[Cell]) -> np.ndarray:
    """(trials, tickets): `key`'s trial means, over the trials every ticket round has."""
    per_trial = trial_values(runs, key)
    cols = [per_trial.loc[(TICKET.name, c.round)] for c in tickets]
    common = sorted(set.intersection(*(set(c.index) for c in cols)))
    return np.array([[float(c.loc[t]) for c in cols] for t in common]).reshape(len(common), -1)


def pick(runs: pd.DataFrame, tickets: Sequence[Cell], key: str, highest: bool) -> Pick:
    """The ticket with the highest (`highest`) or lowest mean of `key`, its ties, its
    runner-up and the bootstrap shares of each round (`statistics.pick_shares`)."""
    sign = 1.0 if highest else -1.0

    def value(c: Cell) -> float:
        return sign * float(getattr(c, CELL_STAT[key]).mean)

    chosen, tied = _top(tickets, value)
    others = [c for c in tickets if c.round != chosen.round]
    runner = _top(others, value)[0] if others else None
    margin = 0.0 if runner is None else abs(value(chosen) - value(runner))
    ordered = sorted(tickets, key=lambda c: (-c.percent_remaining, c.round))  # densest first
    shares = statistics.pick_shares(per_trial_matrix(runs, key, ordered), highest)
    return Pick(
        chosen,
        tuple(c.round for c in tied if c.round != chosen.round),
        runner,
        margin,
        None
        if shares is None
        else {c.round: float(s) for c, s in zip(ordered, shares, strict=True)},
    )


class _Picked:
    """A selection's chosen ticket and its ties, read through its `pick`."""

    pick: Pick

    @property
    def ticket(self) -> Cell:
        return self.pick.ticket

    @property
    def tied_rounds(self) -> tuple[int, ...]:
        return self.pick.tied_rounds


@dataclass(frozen=True)
class EarliestStop(_Picked):
    """The pruned ticket round with the smallest mean early-stop iteration."""

    pick: Pick
    factor_vs_dense: float | None  # dense_es / ticket_es; None without dense or if es == 0
    vs_dense: Difference | None  # dense − ticket early-stop iteration, paired by trial


@dataclass(frozen=True)
class BestTicket(_Picked):
    """The pruned ticket round with the highest mean validation accuracy at early stop."""

    pick: Pick
    vs_dense: Difference | None  # ticket − dense test accuracy at early stop, pp
    test_best: Cell  # the round a pick on test accuracy would have chosen


def earliest(runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell | None) -> EarliestStop:
    """The earliest-stopping ticket, against dense where there is one."""
    p = pick(runs, tickets, ES, highest=False)
    factor = vs = None
    if dense is not None:
        if p.ticket.early_stop.mean > 0:
            factor = dense.early_stop.mean / p.ticket.early_stop.mean
        vs = paired_difference(runs, ES, (TICKET.name, 0), (TICKET.name, p.ticket.round))
    return EarliestStop(p, factor, vs)


def best(runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell | None) -> BestTicket:
    """The best ticket on validation accuracy, against dense where there is one."""
    p = pick(runs, tickets, VAL_ACC, highest=True)
    test_best, _ = _top(tickets, lambda c: c.accuracy.mean)
    vs = None
    if dense is not None:
        vs = paired_difference(
            runs, ACC, (TICKET.name, p.ticket.round), (TICKET.name, 0), scale=100.0
        )
    return BestTicket(p, vs, test_best)
