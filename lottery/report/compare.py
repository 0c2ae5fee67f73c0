"""Two kept studies side by side: what changed between them, computed from their metrics.

    lottery compare BASE NEW [--out FILE]

BASE and NEW are study roots (the project, or a kept copy such as
`reports/results/lenet-5trials-10k`), each with its metrics and its params.yaml. The
output starts with the params that differ (key, BASE value, NEW value, as `dvc params
diff` shows them) and a "protocols differ: ..." line naming those that change results;
studies of different networks or datasets are refused (`lottery.analysis.protocol`).
Rows (condition, round) are paired by % of weights remaining, exactly; rows of one study
only are listed as unmatched (`lottery.analysis.comparison`). For each paired row:

- its censored runs in BASE and in NEW (a censored run stopped less than W iterations
  after its minimum validation loss, W from the patience evidence:
  `lottery.analysis.censoring`), and which rows censored in BASE are no longer in NEW;
- the mean early-stop iteration and test accuracy at early stop in each, and the change
  NEW − BASE paired by trial with a 95% Student-t interval; the changes of one
  condition's rows are one family of tests, and a change is called real only when its
  Holm-adjusted p is below 0.05 and its interval excludes 0;
- the ticket − control gaps of each study (paired by trial within the study, one family
  per control and study, as in the report), so one sees whether a gap at the sparse end
  survives a longer horizon.

Output is Markdown (stdout, or `--out`), deterministic like the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lottery.analysis import inference, statistics
from lottery.analysis.cells import ACC, ES, Difference
from lottery.analysis.comparison import (
    CellKey,
    Pairing,
    Row,
    Study,
    Tested,
    changes,
    gaps,
    load_study,
    pair_rows,
)
from lottery.analysis.protocol import params_diff, protocol_warnings, value_text
from lottery.core import io
from lottery.core.conditions import CONTROLS, label
from lottery.core.errors import guarded
from lottery.core.paths import round_name
from lottery.report.formatting import (
    difference_text,
    fmt_p,
    fmt_percent_remaining,
    holm_text,
)

#: How this entry names itself in usage, messages and its output.
PROG = "lottery compare"


def settings(study: Study) -> str:
    r = study.runs
    horizon = ", ".join(f"{int(v):,}" for v in sorted(r["iterations"].unique()))
    patience = ", ".join(f"{int(v):,}" for v in sorted(r["patience"].unique()))
    trials = r["trial"].nunique()
    return (
        f"{trials} trials, horizon {horizon} iterations, patience {patience} (0 = none), "
        f"{len(r)} runs, {int(r['censored'].sum())} censored"
    )


def rounds_text(row: Row, prefix: str = "round ") -> str:
    """'round 10', or 'round 10 / 5' where BASE and NEW reach the row's % at different
    rounds (`prefix` '' and `round_name` style in the tables)."""
    if row.base_round == row.new_round:
        return f"{prefix}{row.base_round}"
    return f"{prefix}{row.base_round} / {row.new_round}"


def _pct(study: Study, key: CellKey) -> str:
    cell = study.cells[key]
    return fmt_percent_remaining(float(cell["percent_remaining"]))


def censoring_lines(base: Study, new: Study, rows: Sequence[Row]) -> list[str]:
    lines = [f"- {base.name}: {settings(base)}.", f"- {new.name}: {settings(new)}."]
    freed: list[str] = []
    still: list[str] = []
    for row in rows:
        b, n = base.cells[row.base], new.cells[row.new]
        if int(b["n_censored"]) == 0:
            continue
        text = (
            f"{row.condition} {rounds_text(row)} ({_pct(base, row.base)}%): "
            f"{int(b['n_censored'])}/{int(b['n_runs'])} → {int(n['n_censored'])}/{int(n['n_runs'])}"
        )
        (freed if int(n["n_censored"]) == 0 else still).append(text)
    lines.append(f"- Censored in {base.name}, no longer censored in {new.name}: {_listing(freed)}.")
    lines.append(f"- Censored in both: {_listing(still)}.")
    return lines


def _listing(items: Sequence[str]) -> str:
    return "; ".join(items) if items else "none"


def _stat(cell: pd.Series, key: str, scale: float, fmt: str) -> str:
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


def compact(d: Difference | None, p_holm: float | None, above: str, below: str) -> str:
    """'+0.12 [+0.05, +0.20] p 0.012 up' (pp, Holm-adjusted p); 'no clear difference'
    when the change is not real (`real`)."""
    if d is None:
        return "–"
    if not d.has_interval:
        return f"{d.mean:+.2f} (no interval: {d.n_trials} trials)"
    p = "" if p_holm is None else f" p {fmt_p(p_holm)}"
    return f"{d.mean:+.2f} [{d.ci_low:+.2f}, {d.ci_high:+.2f}]{p} {real(d, p_holm, above, below)}"


def cell_table(base: Study, new: Study, rows: Sequence[Row]) -> list[str]:
    head = (
        f"| cell | % remaining | early stop {base.name} | early stop {new.name} | "
        f"test acc at early stop (%) {base.name} | {new.name} | change NEW − BASE (pp) |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    moved = changes(base, new, rows)
    for row in rows:
        b, n = base.cells[row.base], new.cells[row.new]
        name = round_name(row.base_round)
        if row.new_round != row.base_round:
            name += f" / {round_name(row.new_round)}"
        stops = f"{_stat(b, ES, 1, '.0f')} | {_stat(n, ES, 1, '.0f')}"
        accs = f"{_stat(b, ACC, 100, '.2f')} | {_stat(n, ACC, 100, '.2f')}"
        moved_text = compact(*moved[row], "up", "down")
        pct = _pct(new, row.new)
        lines.append(f"| {row.condition} {name} | {pct} | {stops} | {accs} | {moved_text} |")
    return lines


def gap_table(base: Study, new: Study, rows: Sequence[Row]) -> list[str]:
    lines = [
        f"| round | % remaining | control | ticket − control (pp), {base.name} | {new.name} |",
        "|---:|---:|---|---|---|",
    ]
    fb, fn = gaps(base, [r.base for r in rows]), gaps(new, [r.new for r in rows])
    for row in rows:
        if row.condition not in CONTROLS:
            continue
        b, n = (compact(*t, "ticket higher", "ticket lower") for t in (fb[row.base], fn[row.new]))
        pct = _pct(new, row.new)
        lines.append(f"| {rounds_text(row, '')} | {pct} | {row.condition} | {b} | {n} |")
    return lines


def headline(base: Study, new: Study, rows: Sequence[Row]) -> list[str]:
    """Sentences: censoring before and after, then each control at its sparsest row."""
    censored = [r for r in rows if int(base.cells[r.base]["n_censored"]) > 0]
    freed = [r for r in censored if int(new.cells[r.new]["n_censored"]) == 0]
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
    moved = changes(base, new, rows)
    fb, fn = gaps(base, [r.base for r in rows]), gaps(new, [r.new for r in rows])
    for control in CONTROLS:
        mine = [r for r in rows if r.condition == control]
        if mine:
            row = min(mine, key=lambda r: (r.percent, -r.base_round))
            size = sum(moved[r][1] is not None for r in mine)
            lines.append(_sparse_end(base, new, row, moved[row], (fb[row.base], fn[row.new]), size))
    return lines


def _sparse_end(
    base: Study, new: Study, row: Row, moved: Tested, gaps_: Sequence[Tested], size: int
) -> str:
    b, n = base.cells[row.base], new.cells[row.new]
    d, p = moved
    if d is None:
        text, word = "no shared trial", ""
    else:
        text = difference_text(d, "pp", 2, holm_text(p, size))
        word = real(d, p, "up", "down") if d.has_interval else ""
    gb, gn = (_gap_plain(g) for g, _ in gaps_)
    return (
        f"- The {label(row.condition)} at {rounds_text(row)} ({_pct(new, row.new)}% of weights "
        f"remaining): test accuracy at early stop {_stat(b, ACC, 100, '.2f')}% → "
        f"{_stat(n, ACC, 100, '.2f')}%, change {text}{': ' + word if word else ''}; early stop "
        f"{_stat(b, ES, 1, '.0f')} → {_stat(n, ES, 1, '.0f')}; ticket − {row.condition} "
        f"{gb} → {gn}."
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


# ---------------------------------------------------------------- params and pairing


def params_lines(base: Study, new: Study) -> list[str]:
    """The params that differ (as `dvc params diff`), and the protocol warning.

    Raises `ProtocolError` when the studies train different networks or datasets."""
    warned = protocol_warnings(base.name, base.params, new.name, new.params)
    diff = params_diff(base.params, new.params)
    if not diff:
        return ["Params that differ: none (the two params.yaml agree, `pipeline` aside).", ""]
    lines = [
        "Params that differ (as `dvc params diff` shows them; `pipeline` aside, – where a "
        "params.yaml lacks the key):",
        "",
        f"| param | {base.name} | {new.name} |",
        "|---|---|---|",
        *(f"| {c.key} | {value_text(c.base)} | {value_text(c.new)} |" for c in diff),
        "",
    ]
    if warned:
        keys = ", ".join(c.key for c in warned)
        these = "these differences together" if len(warned) > 1 else "this difference"
        lines += [
            f"protocols differ: {keys}. A change NEW − BASE below is the effect of {these}.",
            "",
        ]
    return lines


def pairing_lines(base: Study, new: Study, pairing: Pairing) -> list[str]:
    """A note where rows pair across different rounds, and the rows left unmatched."""
    lines: list[str] = []
    if any(r.base_round != r.new_round for r in pairing.rows):
        lines += [
            "Rows are paired by % of weights remaining: where the two studies reach it at "
            f"different rounds a row names {base.name}'s round, then {new.name}'s (r10 / r05).",
            "",
        ]
    for study, keys in ((base, pairing.only_base), (new, pairing.only_new)):
        if keys:
            listed = "; ".join(f"{c} round {r} ({_pct(study, (c, r))}%)" for c, r in keys)
            lines += [f"Unmatched rows, only in {study.name} (not paired): {listed}.", ""]
    return lines


def render(base: Study, new: Study) -> str:
    head = params_lines(base, new)
    pairing = pair_rows(base, new)
    rows = pairing.rows
    parts = [
        f"# {new.name} compared with {base.name}",
        "",
        *head,
        *pairing_lines(base, new, pairing),
        f"Computed by `{PROG}` from the two studies' per-run metrics. Changes "
        "are NEW − BASE paired by trial (trial t has the same seeds in both), with a 95% "
        f"{statistics.METHOD} interval over trials and the p of its t-test, Holm-adjusted over "
        "the rounds of the cell's condition (one family per condition); a change is called up "
        f"or down only when that p is below {inference.ALPHA} and its interval excludes 0. "
        "Ticket − control gaps are the reports' (Holm over the rounds of each control in each "
        f"study). Early-stop means with censored runs are lower bounds (≥); {_rule(base)}.",
        "",
        "## What changed",
        "",
        *headline(base, new, rows),
        "",
        "## Censoring",
        "",
        *censoring_lines(base, new, rows),
        "",
        "## Every shared cell",
        "",
        *cell_table(base, new, rows),
        "",
        "## Ticket − control gaps (test accuracy at early stop)",
        "",
        *gap_table(base, new, rows),
        "",
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("base", type=Path, help="the study compared against (root of a study)")
    ap.add_argument("new", type=Path, help="the study compared (root of a study)")
    ap.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    args = ap.parse_args(argv)

    def body() -> None:
        text = render(load_study(args.base), load_study(args.new))
        if args.out is None:
            sys.stdout.write(text)
        else:
            io.write_text(args.out, text)
            print(f"wrote {args.out}")

    return guarded(body, PROG)
