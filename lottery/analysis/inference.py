"""The report's facts: cells, picks among rounds, match verdicts and ticket − control gaps.

`compute_summary` derives them from a runs frame (`lottery.results`); `lottery.report`
renders them as sentences and `summary_json` / `statistics_json` as numbers. The rules:

- **Censoring** under a window W (`results.CensoringWindow`, from the patience evidence):
  a run stopped less than W iterations after its minimum validation loss is censored.
- **Intervals** are Student-t over trial means; differences are paired by trial
  (`lottery.statistics` for the coverage that chose the method).
- **Picks** (the best ticket on validation accuracy, the earliest-stopping ticket) carry
  their runner-up, the margin, and the share of bootstrap resamples of the trials that
  pick the same round (`Pick`); below `CLEAR_SHARE` there is no clear pick.
- **Match** with a margin M (pp): a ticket matches dense when its ticket − dense interval
  lies above −M, falls short when it lies below −M, and is undetermined otherwise.
- **Gaps** (ticket − reinit, ticket − random) are one family of tests per control, over
  the rounds, with Holm's adjustment; a gap is called real when its adjusted p is below
  `ALPHA` and its interval, as printed, excludes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lottery.analysis import results, statistics
from lottery.analysis.results import CensoringWindow, Difference, Stats

ES = "early_stop_iteration"
ACC = "test_accuracy_at_early_stop"
ACC_STOP = "test_accuracy_at_stop"
VAL_ACC = "val_accuracy_at_early_stop"
#: The `Cell` attribute holding each metric's statistics.
_STAT = {ES: "early_stop", ACC: "accuracy", VAL_ACC: "val_accuracy", ACC_STOP: "accuracy_at_stop"}
#: Default match margin (pp): about one trial-to-trial standard deviation of the dense
#: LeNet's test accuracy in the committed studies (0.17–0.27 pp), i.e. a ticket this close
#: to dense is as close as another dense trial typically is (25 of 10,000 test examples).
DEFAULT_MARGIN_PP = 0.25
#: A pick chosen by fewer bootstrap resamples than this is "no clear best".
CLEAR_SHARE = 0.8
#: Rounds a pick's sentence names as contenders: picked by at least this share.
CONTENDER_SHARE = 0.05
#: Family-wise error rate of the gap families (Holm).
ALPHA = 0.05
MATCHES, FALLS_SHORT, UNDETERMINED = "matches", "falls short", "undetermined"
#: Guard against float noise when comparing means that should be equal.
_EPS = 1e-9


@dataclass(frozen=True)
class Cell:
    """One (condition, round): its statistics over trial means (accuracies as fractions)."""

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


# --------------------------------------------------------------------------- picks


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
        return self.share is not None and self.share >= CLEAR_SHARE - _EPS

    def contenders(self) -> list[tuple[int, float]]:
        """(round, share) picked by at least `CONTENDER_SHARE`, most picked first."""
        shares = self.shares or {}
        return sorted(
            ((r, s) for r, s in shares.items() if s >= CONTENDER_SHARE - _EPS),
            key=lambda x: (-x[1], x[0]),
        )


def _sparsest(candidates: Sequence[Cell]) -> Cell:
    """Fewest weights remaining; the later round on equal %."""
    return min(candidates, key=lambda c: (c.percent_remaining, -c.round))


def _top(tickets: Sequence[Cell], value: Callable[[Cell], float]) -> tuple[Cell, list[Cell]]:
    top = max(value(c) for c in tickets)
    tied = [c for c in tickets if abs(value(c) - top) <= _EPS]
    return _sparsest(tied), tied


def per_trial_matrix(runs: pd.DataFrame, key: str, tickets: Sequence[Cell]) -> np.ndarray:
    """(trials, tickets): `key`'s trial means, over the trials every ticket round has."""
    per_trial = results.trial_values(runs, key)
    cols = [per_trial.loc[("ticket", c.round)] for c in tickets]
    common = sorted(set.intersection(*(set(c.index) for c in cols)))
    return np.array([[float(c.loc[t]) for c in cols] for t in common]).reshape(len(common), -1)


def pick(runs: pd.DataFrame, tickets: Sequence[Cell], key: str, highest: bool) -> Pick:
    """The ticket with the highest (`highest`) or lowest mean of `key`, its ties, its
    runner-up and the bootstrap shares of each round (`statistics.pick_shares`)."""
    sign = 1.0 if highest else -1.0

    def value(c: Cell) -> float:
        return sign * float(getattr(c, _STAT[key]).mean)

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


def _earliest(runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell | None) -> EarliestStop:
    p = pick(runs, tickets, ES, highest=False)
    factor = vs = None
    if dense is not None:
        if p.ticket.early_stop.mean > 0:
            factor = dense.early_stop.mean / p.ticket.early_stop.mean
        vs = results.paired_difference(runs, ES, ("ticket", 0), ("ticket", p.ticket.round))
    return EarliestStop(p, factor, vs)


def _best(runs: pd.DataFrame, tickets: Sequence[Cell], dense: Cell | None) -> BestTicket:
    p = pick(runs, tickets, VAL_ACC, highest=True)
    test_best, _ = _top(tickets, lambda c: c.accuracy.mean)
    vs = None
    if dense is not None:
        vs = results.paired_difference(
            runs, ACC, ("ticket", p.ticket.round), ("ticket", 0), scale=100.0
        )
    return BestTicket(p, vs, test_best)


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
    if round(d.ci_low, decimals) > -margin_pp + _EPS:
        return MATCHES
    if round(d.ci_high, decimals) < -margin_pp - _EPS:
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
        d = results.paired_difference(runs, ACC, ("ticket", t.round), ("ticket", 0), scale=100.0)
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
            diff = results.paired_difference(
                runs, ACC, ("ticket", t.round), (cond, t.round), scale=100.0
            )
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

    `data` is a runs frame (`lottery.results`) or metrics dicts; its runs are censored
    under `window` (default: `results.default_window()`, the patience evidence's). Ties
    (equal means) are broken towards the sparsest round, and the other tied rounds are
    recorded.
    """
    if margin_pp < 0:
        raise ValueError(f"margin_pp must be >= 0, got {margin_pp}")
    window = results.default_window() if window is None else window
    runs = results.censor(results.as_runs(data), window)
    all_cells = cells(runs)
    ticket = {c.round: c for c in all_cells if c.condition == "ticket"}
    dense = ticket.get(0)
    tickets = tuple(ticket[r] for r in sorted(ticket) if r >= 1)
    controls: dict[str, tuple[Cell, ...]] = {}
    for c in all_cells:
        if c.condition != "ticket":
            controls[c.condition] = (*controls.get(c.condition, ()), c)
    matches = _matches(runs, tickets, margin_pp) if dense is not None else ()
    return Summary(
        dense=dense,
        tickets=tickets,
        controls=controls,
        earliest=_earliest(runs, tickets, dense) if tickets else None,
        best=_best(runs, tickets, dense) if tickets else None,
        margin_pp=margin_pp,
        matches=matches,
        floor=_floor(matches),
        gaps=_gaps(runs, tickets, controls),
        n_runs=len(runs),
        censored=tuple(c for c in all_cells if c.censored),
        window=window,
        validation_size=validation_size,
    )
