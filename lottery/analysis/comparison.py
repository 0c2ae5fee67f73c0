"""Two kept studies side by side, as numbers: their rows paired by % of weights remaining,
and the changes and gaps with their tests (`lottery.report.compare` renders them).

- **Rows** are (condition, round) cells. A row of BASE pairs with the row of NEW of the
  same condition whose % of weights remaining is exactly the same (every run of a round has
  the same %); rows of one study that no row of the other matches are unmatched, never
  paired. Two studies at one pruning rate pair round by round; at different rates they
  pair only where their sparsities coincide (round 10 at rate 0.2 is 10.8% remaining, at
  rate 0.3 it is 2.9%).
- **Changes** NEW − BASE are paired by trial (trial t has the same seeds in both studies),
  repeats averaged, with a 95% Student-t interval; the rows of one condition are one
  family of tests (Holm).
- **Gaps** ticket − control are each study's own, paired by trial within the study, one
  family per control and study, as in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lottery.analysis import statistics
from lottery.analysis.cells import ACC, ES, Difference, cell_table, mean_difference, trial_values
from lottery.analysis.censoring import CensoringWindow, censor
from lottery.analysis.frames import condition_rank, load
from lottery.analysis.patience import default_window
from lottery.analysis.protocol import ProtocolError, read_params
from lottery.core.conditions import CONTROLS, TICKET

KEYS: tuple[str, ...] = (ES, ACC)

CellKey = tuple[str, int]  # (condition, round)
Tested = tuple[Difference | None, float | None]  # a difference and its Holm-adjusted p


@dataclass(frozen=True)
class Study:
    name: str
    runs: pd.DataFrame
    cells: dict[CellKey, pd.Series]  # the rows of cells.cell_table(runs)
    per_trial: dict[str, dict[CellKey, dict[int, float]]]  # key -> cell -> trial -> value
    percent: dict[CellKey, float]  # each cell's % of weights remaining (its runs agree)
    window: CensoringWindow  # what censored its runs
    params: dict[str, Any]  # its params.yaml, as DVC reads it

    def cell(self, condition: str, rnd: int) -> pd.Series | None:
        return self.cells.get((condition, rnd))


def round_percent(runs: pd.DataFrame, root: Path) -> dict[CellKey, float]:
    """Each (condition, round)'s % of weights remaining, the one value its runs share."""
    out: dict[CellKey, float] = {}
    for (cond, rnd), values in runs.groupby(["condition", "round"])["percent_remaining"]:
        distinct = sorted(set(values.astype(float)))
        if len(distinct) != 1:
            raise ProtocolError(
                f"{root}: the runs of {cond} round {rnd} disagree on the % of weights "
                f"remaining ({', '.join(map(str, distinct))}), so the round cannot be paired "
                "by sparsity; check its metrics file."
            )
        out[(str(cond), int(rnd))] = distinct[0]
    return out


def load_study(root: str | Path, window: CensoringWindow | None = None) -> Study:
    """A study's runs, censored under `window` (default: the patience evidence's), its
    cells, and its params."""
    root = Path(root)
    runs = load(root)
    if runs.empty:
        raise ProtocolError(
            f"{root}: no per-run metrics under {root / 'metrics'}; is it a study root? Name "
            "a study directory (the project, or a kept one such as reports/results/NAME)."
        )
    window = default_window() if window is None else window
    runs = censor(runs, window)
    table = cell_table(runs, KEYS)
    cells = {(str(row["condition"]), int(row["round"])): row for _, row in table.iterrows()}
    per_trial: dict[str, dict[CellKey, dict[int, float]]] = {}
    for key in KEYS:
        by_cell: dict[CellKey, dict[int, float]] = {}
        for (cond, rnd, trial), value in trial_values(runs, key).items():
            by_cell.setdefault((str(cond), int(rnd)), {})[int(trial)] = float(value)
        per_trial[key] = by_cell
    percent = round_percent(runs, root)
    return Study(root.resolve().name, runs, cells, per_trial, percent, window, read_params(root))


# ------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class Row:
    """A row of BASE paired with the row of NEW at the same % of weights remaining."""

    condition: str
    percent: float
    base_round: int
    new_round: int

    @property
    def base(self) -> CellKey:
        return self.condition, self.base_round

    @property
    def new(self) -> CellKey:
        return self.condition, self.new_round


@dataclass(frozen=True)
class Pairing:
    rows: tuple[Row, ...]  # by condition, densest first
    only_base: tuple[CellKey, ...]  # BASE's rows no row of NEW matches
    only_new: tuple[CellKey, ...]


def pair_rows(base: Study, new: Study) -> Pairing:
    """Rows of one condition pair when their % of weights remaining is exactly equal (the
    k-th such row of BASE with the k-th of NEW, by round, should a % repeat)."""
    rows: list[Row] = []
    only_base: list[CellKey] = []
    waiting: dict[tuple[str, float], list[int]] = {}
    for (cond, rnd), pct in sorted(new.percent.items(), key=lambda kv: kv[0][1]):
        waiting.setdefault((cond, pct), []).append(rnd)
    for (cond, rnd), pct in sorted(base.percent.items(), key=lambda kv: kv[0][1]):
        match = waiting.get((cond, pct))
        if match:
            rows.append(Row(cond, pct, rnd, match.pop(0)))
        else:
            only_base.append((cond, rnd))
    only_new = [(cond, r) for (cond, _), rounds in waiting.items() for r in rounds]

    def order(k: CellKey) -> tuple[tuple[int, str], int]:
        return condition_rank(k[0]), k[1]

    return Pairing(
        tuple(sorted(rows, key=lambda r: (condition_rank(r.condition), -r.percent, r.base_round))),
        tuple(sorted(only_base, key=order)),
        tuple(sorted(only_new, key=order)),
    )


# ------------------------------------------------------------- changes and gaps


def paired(a: dict[int, float], b: dict[int, float], scale: float) -> Difference | None:
    """scale × (a − b) over the trials both have, with its 95% interval and t-test."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    diffs = np.array([a[t] for t in common]) - np.array([b[t] for t in common])
    return mean_difference(scale * diffs)


def change(base: Study, new: Study, key: str, row: Row, scale: float) -> Difference | None:
    """scale × (NEW − BASE) of `key` in one row, paired by trial (repeats averaged)."""
    b, n = base.per_trial[key].get(row.base), new.per_trial[key].get(row.new)
    return None if b is None or n is None else paired(n, b, scale)


def family(diffs: Sequence[Difference | None]) -> list[float | None]:
    """Holm-adjusted p of each difference of one family (None where there is none)."""
    return statistics.holm([None if d is None else d.p_value for d in diffs])


def changes(base: Study, new: Study, rows: Sequence[Row]) -> dict[Row, Tested]:
    """Per row: NEW − BASE test accuracy at early stop (pp) and its Holm-adjusted p, the
    rows of one condition being one family."""
    out: dict[Row, Tested] = {}
    for cond in dict.fromkeys(r.condition for r in rows):
        mine = [r for r in rows if r.condition == cond]
        diffs = [change(base, new, ACC, r, 100.0) for r in mine]
        out.update(zip(mine, zip(diffs, family(diffs), strict=True), strict=True))
    return out


def gap(study: Study, control: str, rnd: int) -> Difference | None:
    """Ticket − control test accuracy at early stop (pp) in one study, paired by trial."""
    values = study.per_trial[ACC]
    ticket, other = values.get((TICKET.name, rnd)), values.get((control, rnd))
    return None if ticket is None or other is None else paired(ticket, other, 100.0)


def gaps(study: Study, keys: Sequence[CellKey]) -> dict[CellKey, Tested]:
    """Per control cell of `keys`: the study's ticket − control gap (pp) and its
    Holm-adjusted p, one family per control (as in the report)."""
    out: dict[CellKey, Tested] = {}
    for control in CONTROLS:
        mine = [(c, r) for c, r in keys if c == control]
        diffs = [gap(study, control, r) for _, r in mine]
        out.update(zip(mine, zip(diffs, family(diffs), strict=True), strict=True))
    return out
