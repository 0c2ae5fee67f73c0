"""Two kept studies side by side: what changed between them, computed from their metrics.

    python -m lottery.report.compare BASE NEW [--out FILE]

BASE and NEW are study roots (the project, or a kept copy such as
`reports/results/lenet-5trials-10k`). The comparison covers the (condition, round) cells
both studies ran and states, for each:

- its censored runs in BASE and in NEW (a censored run stopped less than W iterations
  after its minimum validation loss, W from the patience evidence: `lottery.results`),
  and which cells that were censored in BASE are no longer censored in NEW;
- the mean early-stop iteration and test accuracy at early stop in each, and the change
  NEW − BASE paired by trial (trial t has the same seeds in both studies) with a 95%
  Student-t interval; the changes of one condition's rounds are one family of tests, and
  a change is called real only when its Holm-adjusted p is below 0.05 and its interval
  excludes 0;
- the ticket − control gaps of each study (paired by trial within the study, one family
  per control and study, as in the report), so one sees whether a gap at the sparse end
  survives a longer horizon.

Output is Markdown (stdout, or `--out`), deterministic like the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lottery.analysis import inference, results, statistics
from lottery.analysis.results import CensoringWindow, Difference
from lottery.core import io
from lottery.core.paths import round_name
from lottery.report.text import (
    CONTROL_LABELS,
    difference_text,
    fmt_p,
    fmt_percent_remaining,
    holm_text,
)

ES = "early_stop_iteration"
ACC = "test_accuracy_at_early_stop"
KEYS: tuple[str, ...] = (ES, ACC)
CONTROLS: tuple[str, ...] = ("reinit", "random")


Cell = tuple[str, int]  # (condition, round)


@dataclass(frozen=True)
class Study:
    name: str
    runs: pd.DataFrame
    cells: dict[Cell, pd.Series]  # the rows of results.cell_table(runs)
    per_trial: dict[str, dict[Cell, dict[int, float]]]  # key -> cell -> trial -> value
    window: CensoringWindow  # what censored its runs

    def cell(self, condition: str, rnd: int) -> pd.Series | None:
        return self.cells.get((condition, rnd))

    def settings(self) -> str:
        r = self.runs
        horizon = ", ".join(f"{int(v):,}" for v in sorted(r["iterations"].unique()))
        patience = ", ".join(f"{int(v):,}" for v in sorted(r["patience"].unique()))
        trials = r["trial"].nunique()
        return (
            f"{trials} trials, horizon {horizon} iterations, patience {patience} (0 = none), "
            f"{len(r)} runs, {int(r['censored'].sum())} censored"
        )


def load(root: str | Path, window: CensoringWindow | None = None) -> Study:
    """A study's runs, censored under `window` (default: the patience evidence's)."""
    root = Path(root)
    runs = results.load(root)
    window = results.default_window() if window is None else window
    if not runs.empty:
        runs = results.censor(runs, window)
    if runs.empty:
        raise SystemExit(
            f"{root}: no per-run metrics under {root / 'metrics'}; is it a study root?"
        )
    table = results.cell_table(runs, KEYS)
    cells = {(str(row["condition"]), int(row["round"])): row for _, row in table.iterrows()}
    per_trial: dict[str, dict[Cell, dict[int, float]]] = {}
    for key in KEYS:
        by_cell: dict[Cell, dict[int, float]] = {}
        for (cond, rnd, trial), value in results.trial_values(runs, key).items():
            by_cell.setdefault((str(cond), int(rnd)), {})[int(trial)] = float(value)
        per_trial[key] = by_cell
    return Study(root.resolve().name, runs, cells, per_trial, window)


def shared_cells(base: Study, new: Study) -> list[Cell]:
    """(condition, round) run in both studies, in the report's order."""
    both = set(base.cells) & set(new.cells)
    return sorted(both, key=lambda k: (results.condition_rank(k[0]), k[1]))


def paired(a: dict[int, float], b: dict[int, float], scale: float) -> Difference | None:
    """scale × (a − b) over the trials both have, with its 95% interval and t-test."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    diffs = np.array([a[t] for t in common]) - np.array([b[t] for t in common])
    return results.mean_difference(scale * diffs)


def change(base: Study, new: Study, key: str, cell: Cell, scale: float) -> Difference | None:
    """scale × (NEW − BASE) of `key` in one cell, paired by trial (repeats averaged)."""
    b, n = base.per_trial[key].get(cell), new.per_trial[key].get(cell)
    return None if b is None or n is None else paired(n, b, scale)


def censoring_lines(base: Study, new: Study, cells: Sequence[tuple[str, int]]) -> list[str]:
    lines = [
        f"- {base.name}: {base.settings()}.",
        f"- {new.name}: {new.settings()}.",
    ]
    freed: list[str] = []
    still: list[str] = []
    for cond, rnd in cells:
        b, n = base.cell(cond, rnd), new.cell(cond, rnd)
        if b is None or n is None or int(b["n_censored"]) == 0:
            continue
        text = (
            f"{cond} round {rnd} ({fmt_percent_remaining(float(b['percent_remaining']))}%): "
            f"{int(b['n_censored'])}/{int(b['n_runs'])} → {int(n['n_censored'])}/{int(n['n_runs'])}"
        )
        (freed if int(n["n_censored"]) == 0 else still).append(text)
    lines.append(f"- Censored in {base.name}, no longer censored in {new.name}: {_listing(freed)}.")
    lines.append(f"- Censored in both: {_listing(still)}.")
    return lines


def _listing(items: Sequence[str]) -> str:
    return "; ".join(items) if items else "none"


def _stat(cell: pd.Series | None, key: str, scale: float, fmt: str) -> str:
    if cell is None:
        return "–"
    mean = format(scale * float(cell[f"{key}_mean"]), fmt)
    if key == ES and int(cell["n_censored"]) > 0:
        return f"≥ {mean} ({int(cell['n_censored'])}/{int(cell['n_runs'])} cens.)"
    return mean


def real(d: Difference, p_holm: float | None, above: str, below: str) -> str:
    """`above` / `below` when the Holm-adjusted p is below `inference.ALPHA` and the
    interval, as printed, excludes 0; "no clear difference" otherwise."""
    if p_holm is None or d.ci_low is None or d.ci_high is None or p_holm >= inference.ALPHA:
        return "no clear difference"
    if round(d.ci_low, 2) > 0:
        return above
    if round(d.ci_high, 2) < 0:
        return below
    return "no clear difference"


def family(diffs: Sequence[Difference | None]) -> list[float | None]:
    """Holm-adjusted p of each difference of one family (None where there is none)."""
    return statistics.holm([None if d is None else d.p_value for d in diffs])


def compact(d: Difference | None, p_holm: float | None, above: str, below: str) -> str:
    """'+0.12 [+0.05, +0.20] p 0.012 up' (pp, Holm-adjusted p); 'no clear difference'
    when the change is not real (`real`)."""
    if d is None:
        return "–"
    if not d.has_interval:
        return f"{d.mean:+.2f} (no interval: {d.n_trials} trials)"
    p = "" if p_holm is None else f" p {fmt_p(p_holm)}"
    return f"{d.mean:+.2f} [{d.ci_low:+.2f}, {d.ci_high:+.2f}]{p} {real(d, p_holm, above, below)}"


def changes(
    base: Study, new: Study, cells: Sequence[Cell]
) -> dict[Cell, tuple[Difference | None, float | None]]:
    """Per cell: NEW − BASE test accuracy at early stop (pp) and its Holm-adjusted p, the
    rounds of one condition being one family."""
    out: dict[Cell, tuple[Difference | None, float | None]] = {}
    for cond in dict.fromkeys(c for c, _ in cells):
        mine = [cell for cell in cells if cell[0] == cond]
        diffs = [change(base, new, ACC, cell, 100.0) for cell in mine]
        out.update(zip(mine, zip(diffs, family(diffs), strict=True), strict=True))
    return out


def gaps(study: Study, cells: Sequence[Cell]) -> dict[Cell, tuple[Difference | None, float | None]]:
    """Per control cell: the study's ticket − control gap (pp) and its Holm-adjusted p,
    one family per control (as in the report)."""
    out: dict[Cell, tuple[Difference | None, float | None]] = {}
    for control in CONTROLS:
        mine = [(c, r) for c, r in cells if c == control]
        diffs = [gap(study, control, r) for _, r in mine]
        out.update(zip(mine, zip(diffs, family(diffs), strict=True), strict=True))
    return out


def cell_table(base: Study, new: Study, cells: Sequence[tuple[str, int]]) -> list[str]:
    head = (
        f"| cell | % remaining | early stop {base.name} | early stop {new.name} | "
        f"test acc at early stop (%) {base.name} | {new.name} | change NEW − BASE (pp) |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    moved = changes(base, new, cells)
    for cond, rnd in cells:
        b, n = base.cell(cond, rnd), new.cell(cond, rnd)
        if b is None or n is None:
            continue
        pct = fmt_percent_remaining(float(n["percent_remaining"]))
        d, p = moved[(cond, rnd)]
        stops = f"{_stat(b, ES, 1, '.0f')} | {_stat(n, ES, 1, '.0f')}"
        accs = f"{_stat(b, ACC, 100, '.2f')} | {_stat(n, ACC, 100, '.2f')}"
        moved_text = compact(d, p, "up", "down")
        lines.append(f"| {cond} {round_name(rnd)} | {pct} | {stops} | {accs} | {moved_text} |")
    return lines


def gap(study: Study, control: str, rnd: int) -> Difference | None:
    """Ticket − control test accuracy at early stop (pp) in one study, paired by trial."""
    values = study.per_trial[ACC]
    ticket, other = values.get(("ticket", rnd)), values.get((control, rnd))
    return None if ticket is None or other is None else paired(ticket, other, 100.0)


def gap_table(base: Study, new: Study, cells: Sequence[tuple[str, int]]) -> list[str]:
    lines = [
        f"| round | % remaining | control | ticket − control (pp), {base.name} | {new.name} |",
        "|---:|---:|---|---|---|",
    ]
    families = [gaps(s, cells) for s in (base, new)]
    for cond, rnd in cells:
        if cond not in CONTROLS:
            continue
        cell = new.cell(cond, rnd)
        pct = "–" if cell is None else fmt_percent_remaining(float(cell["percent_remaining"]))
        b, n = (compact(*f[(cond, rnd)], "ticket higher", "ticket lower") for f in families)
        lines.append(f"| {rnd} | {pct} | {cond} | {b} | {n} |")
    return lines


def headline(base: Study, new: Study, cells: Sequence[tuple[str, int]]) -> list[str]:
    """Sentences: censoring before and after, then each control at the sparsest shared round."""
    censored = [(c, r) for c, r in cells if _censored(base, c, r)]
    freed = [(c, r) for c, r in censored if not _censored(new, c, r)]
    cells_line = (
        f"{len(freed)} of the {len(censored)} cells censored in {base.name} are not censored "
        f"in {new.name}"
        if censored
        else f"no shared cell is censored in {base.name}"
    )
    lines = [
        f"- Censored runs: {int(base.runs['censored'].sum())} of {len(base.runs)} in "
        f"{base.name}, {int(new.runs['censored'].sum())} of {len(new.runs)} in {new.name}; "
        f"{cells_line}."
    ]
    moved = changes(base, new, cells)
    families = [gaps(s, cells) for s in (base, new)]
    for control in CONTROLS:
        rounds = [r for c, r in cells if c == control]
        if rounds:
            cell = (control, max(rounds))
            size = sum(moved[k][1] is not None for k in moved if k[0] == control)
            lines.append(
                _sparse_end(base, new, cell, moved[cell], [f[cell] for f in families], size)
            )
    return lines


def _censored(study: Study, condition: str, rnd: int) -> bool:
    cell = study.cell(condition, rnd)
    return cell is not None and int(cell["n_censored"]) > 0


Tested = tuple[Difference | None, float | None]  # a difference and its Holm-adjusted p


def _sparse_end(
    base: Study, new: Study, cell: Cell, moved: Tested, gaps_: Sequence[Tested], size: int
) -> str:
    control, rnd = cell
    b, n = base.cell(control, rnd), new.cell(control, rnd)
    if b is None or n is None:
        return ""
    pct = fmt_percent_remaining(float(n["percent_remaining"]))
    d, p = moved
    if d is None:
        text, word = "no shared trial", ""
    else:
        text = difference_text(d, "pp", 2, holm_text(p, size))
        word = real(d, p, "up", "down") if d.has_interval else ""
    gb, gn = (_gap_plain(g) for g, _ in gaps_)
    return (
        f"- The {CONTROL_LABELS[control]} at round {rnd} ({pct}% of weights remaining): test "
        f"accuracy at early stop {_stat(b, ACC, 100, '.2f')}% → {_stat(n, ACC, 100, '.2f')}%, "
        f"change {text}{': ' + word if word else ''}; early stop {_stat(b, ES, 1, '.0f')} → "
        f"{_stat(n, ES, 1, '.0f')}; ticket − {control} {gb} → {gn}."
    )


def _rule(study: Study) -> str:
    w = study.window.iterations
    if w is None:
        return (
            "a run is censored when it reached its horizon with its minimum validation loss "
            "in the last two evaluations"
        )
    return (
        f"a run is censored when it stopped less than {w:,} iterations after its minimum "
        "validation loss (the window of the patience evidence, as in the reports)"
    )


def _gap_plain(d: Difference | None) -> str:
    return "–" if d is None else difference_text(d, "pp", 2)


def render(base: Study, new: Study) -> str:
    cells = shared_cells(base, new)
    parts = [
        f"# {new.name} compared with {base.name}",
        "",
        "Computed by `lottery compare` from the two studies' per-run metrics. Changes "
        "are NEW − BASE paired by trial (trial t has the same seeds in both), with a 95% "
        f"{statistics.METHOD} interval over trials and the p of its t-test, Holm-adjusted over "
        "the rounds of the cell's condition (one family per condition); a change is called up "
        f"or down only when that p is below {inference.ALPHA} and its interval excludes 0. "
        "Ticket − control gaps are the reports' (Holm over the rounds of each control in each "
        f"study). Early-stop means with censored runs are lower bounds (≥); {_rule(base)}.",
        "",
        "## What changed",
        "",
        *headline(base, new, cells),
        "",
        "## Censoring",
        "",
        *censoring_lines(base, new, cells),
        "",
        "## Every shared cell",
        "",
        *cell_table(base, new, cells),
        "",
        "## Ticket − control gaps (test accuracy at early stop)",
        "",
        *gap_table(base, new, cells),
        "",
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lottery.report.compare", description=__doc__.split("\n")[0]
    )
    ap.add_argument("base", type=Path, help="the study compared against (root of a study)")
    ap.add_argument("new", type=Path, help="the study compared (root of a study)")
    ap.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    args = ap.parse_args(argv)
    text = render(load(args.base), load(args.new))
    if args.out is None:
        sys.stdout.write(text)
    else:
        io.write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
