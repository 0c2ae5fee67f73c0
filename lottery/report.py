"""The Markdown report: every number and every sentence is computed from the metrics.

Nothing here is a hand-written claim. `compute_summary` derives the facts (with the
numbers tests can check); `summary_claims` only renders them as sentences, choosing the
wording from the numbers themselves (earlier/later, gain/loss, tie), so each sentence is
true for any inputs: only the dense round, no controls, ties, tickets worse than dense.

Accuracies are fractions in the metrics files and percentages (2 decimals) here;
accuracy differences are in percentage points (pp).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lottery import io
from lottery.plots import CONDITIONS, metric_stats, n_runs

#: The three statistics tabulated for each (condition, round).
TABLE_METRICS: tuple[str, ...] = (
    "early_stop_iteration",
    "test_accuracy_at_early_stop",
    "final_test_accuracy",
)
CONTROL_LABELS: dict[str, str] = {
    "ticket": "ticket",
    "reinit": "reinit control",
    "random": "random-prune control",
}
#: Default tolerance (percentage points) for "a ticket matches the dense accuracy":
#: 0.0 means its mean test accuracy at early stop is at least the dense network's mean.
DEFAULT_TOLERANCE_PP = 0.0
#: Guard against float noise when comparing means that should be equal.
_EPS = 1e-9
TITLE = "Lottery Ticket Hypothesis: LeNet-300-100 on MNIST"


# --------------------------------------------------------------------------- table


def row_label(condition: str, rnd: int) -> str:
    if condition == "ticket" and rnd == 0:
        return "dense (round 0)"
    return f"{CONTROL_LABELS.get(condition, condition)}, round {rnd}"


def _condition_rank(condition: str) -> tuple[int, str]:
    return (
        (CONDITIONS.index(condition), "")
        if condition in CONDITIONS
        else (len(CONDITIONS), condition)
    )


def aggregate_table(metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (condition, round): dense, ticket 1..N, reinit 1..N, random 1..N.

    Each row: condition, label, round, percent_remaining, n_runs, and for each of
    `TABLE_METRICS` a {"mean", "min", "max"} dict (accuracies as fractions).
    Raises ValueError on a duplicated (condition, round).
    """
    seen: set[tuple[str, int]] = set()
    rows: list[dict[str, Any]] = []
    for m in metrics:
        cond, rnd = str(m["condition"]), int(m["round"])
        if (cond, rnd) in seen:
            raise ValueError(f"duplicate metrics for condition {cond!r}, round {rnd}")
        seen.add((cond, rnd))
        row: dict[str, Any] = {
            "condition": cond,
            "label": row_label(cond, rnd),
            "round": rnd,
            "percent_remaining": float(m["percent_remaining"]),
            "n_runs": n_runs(m),
        }
        for key in TABLE_METRICS:
            row[key] = metric_stats(m, key)
        rows.append(row)
    rows.sort(key=lambda r: (_condition_rank(r["condition"]), r["round"]))
    return rows


def fmt_percent_remaining(value: float) -> str:
    """100.0, 51.2, 3.6, then 2 significant digits below 1% (0.59)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _fmt_accuracy(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}"


def _fmt_iteration(value: float) -> str:
    return f"{value:.0f}"


def _cell(stats: Mapping[str, float], runs: int, fmt: Any) -> str:
    if runs > 1:
        return f"{fmt(stats['mean'])} ({fmt(stats['min'])}–{fmt(stats['max'])})"
    return str(fmt(stats["mean"]))


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table; cells are "mean (min–max)" when a row has more than one run."""
    lines = [
        "| condition | % weights remaining | early-stop iteration "
        "| test acc. at early stop | final test acc. |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        runs = int(r["n_runs"])
        cells = [
            str(r["label"]),
            fmt_percent_remaining(float(r["percent_remaining"])),
            _cell(r["early_stop_iteration"], runs, _fmt_iteration),
            _cell(r["test_accuracy_at_early_stop"], runs, _fmt_accuracy),
            _cell(r["final_test_accuracy"], runs, _fmt_accuracy),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class RoundPoint:
    """Mean results of one ticket round (accuracy as a fraction)."""

    round: int
    percent_remaining: float
    early_stop_iteration: float
    test_accuracy: float


@dataclass(frozen=True)
class EarliestStop:
    """The pruned ticket round with the smallest mean early-stop iteration."""

    ticket: RoundPoint
    tied_rounds: tuple[int, ...]  # other rounds with the same mean early-stop iteration
    factor_vs_dense: float | None  # dense_es / ticket_es; None without dense or if es == 0


@dataclass(frozen=True)
class BestAccuracy:
    """The pruned ticket round with the highest mean test accuracy at early stop."""

    ticket: RoundPoint
    tied_rounds: tuple[int, ...]
    gain_pp: float | None  # (ticket - dense) * 100; None without a dense round


@dataclass(frozen=True)
class ControlGap:
    """Ticket minus control, mean test accuracy at early stop, percentage points."""

    round: int
    percent_remaining: float
    ticket_accuracy: float
    reinit_accuracy: float | None
    random_accuracy: float | None
    reinit_gap_pp: float | None
    random_gap_pp: float | None


@dataclass(frozen=True)
class Summary:
    dense: RoundPoint | None
    tickets: tuple[RoundPoint, ...]  # pruned rounds (>= 1), by round
    earliest: EarliestStop | None  # None when there is no pruned ticket
    best: BestAccuracy | None
    tolerance_pp: float
    # Sparsest ticket with mean accuracy >= dense - tolerance; None if none (or no dense).
    sparsest_matching: RoundPoint | None
    gaps: tuple[ControlGap, ...]
    control_conditions: tuple[str, ...]  # control conditions present in the metrics


def _point(m: Mapping[str, Any]) -> RoundPoint:
    return RoundPoint(
        round=int(m["round"]),
        percent_remaining=float(m["percent_remaining"]),
        early_stop_iteration=metric_stats(m, "early_stop_iteration")["mean"],
        test_accuracy=metric_stats(m, "test_accuracy_at_early_stop")["mean"],
    )


def _sparsest(points: Sequence[RoundPoint]) -> RoundPoint:
    """Fewest weights remaining; the later round on equal %."""
    return min(points, key=lambda p: (p.percent_remaining, -p.round))


def compute_summary(
    metrics: Sequence[Mapping[str, Any]], tolerance_pp: float = DEFAULT_TOLERANCE_PP
) -> Summary:
    """The facts behind the summary sentences (see the dataclasses for the definitions).

    Ties (equal means) are broken towards the sparsest round, and the other tied rounds
    are recorded so the sentence can say so.
    """
    if tolerance_pp < 0:
        raise ValueError(f"tolerance_pp must be >= 0, got {tolerance_pp}")
    by_cond: dict[str, dict[int, Mapping[str, Any]]] = {}
    for m in metrics:
        by_cond.setdefault(str(m["condition"]), {})[int(m["round"])] = m
    ticket_metrics = by_cond.get("ticket", {})
    dense = _point(ticket_metrics[0]) if 0 in ticket_metrics else None
    tickets = tuple(_point(ticket_metrics[r]) for r in sorted(ticket_metrics) if r >= 1)

    earliest: EarliestStop | None = None
    best: BestAccuracy | None = None
    sparsest_matching: RoundPoint | None = None
    if tickets:
        low_es = min(p.early_stop_iteration for p in tickets)
        tied = [p for p in tickets if abs(p.early_stop_iteration - low_es) <= _EPS]
        pick = _sparsest(tied)
        factor = None
        if dense is not None and pick.early_stop_iteration > 0:
            factor = dense.early_stop_iteration / pick.early_stop_iteration
        others = tuple(p.round for p in tied if p.round != pick.round)
        earliest = EarliestStop(ticket=pick, tied_rounds=others, factor_vs_dense=factor)

        high_acc = max(p.test_accuracy for p in tickets)
        tied = [p for p in tickets if abs(p.test_accuracy - high_acc) <= _EPS]
        pick = _sparsest(tied)
        gain = None if dense is None else 100.0 * (pick.test_accuracy - dense.test_accuracy)
        others = tuple(p.round for p in tied if p.round != pick.round)
        best = BestAccuracy(ticket=pick, tied_rounds=others, gain_pp=gain)

        if dense is not None:
            threshold_pp = 100.0 * dense.test_accuracy - tolerance_pp
            matching = [p for p in tickets if 100.0 * p.test_accuracy >= threshold_pp - _EPS]
            sparsest_matching = _sparsest(matching) if matching else None

    controls = tuple(c for c in ("reinit", "random") if c in by_cond) + tuple(
        sorted(c for c in by_cond if c not in CONDITIONS)
    )
    gaps: list[ControlGap] = []
    for p in tickets:
        accs: dict[str, float | None] = {}
        for cond in ("reinit", "random"):
            control = by_cond.get(cond, {}).get(p.round)
            accs[cond] = (
                None
                if control is None
                else metric_stats(control, "test_accuracy_at_early_stop")["mean"]
            )
        if accs["reinit"] is None and accs["random"] is None:
            continue
        gaps.append(
            ControlGap(
                round=p.round,
                percent_remaining=p.percent_remaining,
                ticket_accuracy=p.test_accuracy,
                reinit_accuracy=accs["reinit"],
                random_accuracy=accs["random"],
                reinit_gap_pp=_gap(p.test_accuracy, accs["reinit"]),
                random_gap_pp=_gap(p.test_accuracy, accs["random"]),
            )
        )
    return Summary(
        dense=dense,
        tickets=tickets,
        earliest=earliest,
        best=best,
        tolerance_pp=tolerance_pp,
        sparsest_matching=sparsest_matching,
        gaps=tuple(gaps),
        control_conditions=controls,
    )


def _gap(ticket: float, control: float | None) -> float | None:
    return None if control is None else 100.0 * (ticket - control)


def _signed(value: float, decimals: int = 2) -> str:
    """'+0.20', '-1.35', never '-0.00'."""
    return f"{round(value, decimals) + 0.0:+.{decimals}f}"


def _pct(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}%"


def _where(p: RoundPoint) -> str:
    return f"round {p.round} ({fmt_percent_remaining(p.percent_remaining)}% of weights remaining)"


def _ties(rounds: Sequence[int]) -> str:
    if not rounds:
        return ""
    word = "round" if len(rounds) == 1 else "rounds"
    return f" (tied with {word} {', '.join(map(str, sorted(rounds)))}; the sparsest is named)"


def summary_claims(
    metrics: Sequence[Mapping[str, Any]] | Summary, tolerance_pp: float = DEFAULT_TOLERANCE_PP
) -> list[str]:
    """Sentences rendered from `compute_summary` (pass a Summary to reuse one)."""
    s = metrics if isinstance(metrics, Summary) else compute_summary(metrics, tolerance_pp)
    claims: list[str] = []
    dense = s.dense
    if not s.tickets:
        if dense is None:
            return ["No ticket results were found, so there is nothing to summarise."]
        claims.append(
            f"Only the dense network (round 0) has been trained: mean early-stop iteration "
            f"{dense.early_stop_iteration:.0f}, mean test accuracy at early stop "
            f"{_pct(dense.test_accuracy)}; there are no pruned tickets to compare."
        )
    if dense is None and s.tickets:
        claims.append("The dense network (round 0) is missing, so no comparison to it is made.")

    if s.earliest is not None:
        e, t = s.earliest, s.earliest.ticket
        text = (
            f"The earliest-stopping ticket is {_where(t)}{_ties(e.tied_rounds)}: mean early-stop "
            f"iteration {t.early_stop_iteration:.0f}"
        )
        if dense is not None:
            text += f" vs {dense.early_stop_iteration:.0f} for the dense network"
            if e.factor_vs_dense is not None:
                if t.early_stop_iteration < dense.early_stop_iteration:
                    how = "earlier than"
                elif t.early_stop_iteration > dense.early_stop_iteration:
                    how = "later than"
                else:
                    how = "the same as"
                text += (
                    f", a factor of {e.factor_vs_dense:.1f} (dense ÷ ticket early-stop "
                    f"iteration; the ticket stops {how} the dense network)"
                )
        claims.append(text + ".")

    if s.best is not None:
        b, t = s.best, s.best.ticket
        text = (
            f"The most accurate ticket is {_where(t)}{_ties(b.tied_rounds)}: mean test accuracy "
            f"at early stop {_pct(t.test_accuracy)}"
        )
        if dense is not None and b.gain_pp is not None:
            text += (
                f" vs {_pct(dense.test_accuracy)} for the dense network, "
                f"{_signed(b.gain_pp)} percentage points"
            )
            if round(b.gain_pp, 2) < 0:
                text += " (no pruned ticket reached the dense accuracy)"
        claims.append(text + ".")

    if dense is not None and s.tickets:
        rule = (
            f"mean test accuracy at early stop at least the dense network's "
            f"{_pct(dense.test_accuracy)} minus a tolerance of {s.tolerance_pp:.2f} "
            f"percentage points"
        )
        if s.sparsest_matching is not None:
            p = s.sparsest_matching
            claims.append(
                f"The sparsest ticket that matches the dense network ({rule}) is {_where(p)}, "
                f"at {_pct(p.test_accuracy)}."
            )
        else:
            claims.append(f"No pruned ticket matches the dense network ({rule}).")

    if s.tickets:
        if not s.gaps:
            claims.append(
                "No control runs (reinit, random prune) share a round with the tickets, so no "
                "ticket-vs-control gaps are reported."
            )
        for g in s.gaps:
            parts = []
            if g.reinit_gap_pp is not None and g.reinit_accuracy is not None:
                parts.append(
                    f"ticket − reinit = {_signed(g.reinit_gap_pp)} pp "
                    f"({_pct(g.ticket_accuracy)} vs {_pct(g.reinit_accuracy)})"
                )
            if g.random_gap_pp is not None and g.random_accuracy is not None:
                parts.append(
                    f"ticket − random prune = {_signed(g.random_gap_pp)} pp "
                    f"({_pct(g.ticket_accuracy)} vs {_pct(g.random_accuracy)})"
                )
            claims.append(
                f"Round {g.round} ({fmt_percent_remaining(g.percent_remaining)}% remaining), "
                f"mean test accuracy at early stop: {'; '.join(parts)}."
            )
    return claims


# -------------------------------------------------------------------------- report


_MASK_FIGURE = re.compile(r"(?:^|/)r(\d+)_(fc1_mask|pixel_map)$")
FIGURE_CAPTIONS: dict[str, str] = {
    "accuracy_vs_remaining": "Test accuracy at the early-stop iteration vs % of weights remaining",
    "early_stop_vs_remaining": "Early-stop iteration vs % of weights remaining",
    "learning_curves": "Test accuracy during training for selected pruning levels",
    "density_by_round": "Density of each layer by pruning round",
}


def figure_caption(name: str) -> str:
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    m = _MASK_FIGURE.search(name)
    if m:
        what = (
            "first-layer mask (input pixels × hidden units)"
            if m.group(2) == "fc1_mask"
            else "fc1 connections kept per input pixel (28×28)"
        )
        return f"Round {int(m.group(1))}: {what}"
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


def _runs_line(rows: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, set[int]] = {}
    for r in rows:
        counts.setdefault(str(r["condition"]), set()).add(int(r["n_runs"]))
    if not counts:
        return "No metrics were found."
    parts = [f"{c} {', '.join(map(str, sorted(n)))}" for c, n in counts.items()]
    return f"Runs per (condition, round): {'; '.join(parts)}."


def render_report(
    metrics: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Path],
    params: Mapping[str, Any],
    params_hash: str,
    git_rev: str,
    report_dir: str | Path,
    tolerance_pp: float = DEFAULT_TOLERANCE_PP,
) -> str:
    """The whole report as Markdown (deterministic: no timestamps, no run ids)."""
    summary = compute_summary(metrics, tolerance_pp)
    rows = aggregate_table(metrics)
    out = [f"# {TITLE}", ""]
    out += [
        "All numbers below are computed from the pipeline's metrics files. Accuracies are",
        "test accuracies in %, taken at the early-stop iteration (minimum validation loss)",
        "unless marked final; pp = percentage points; with several runs per cell the table",
        "shows mean (min–max).",
        "",
        _runs_line(rows),
        "",
        "## Summary",
        "",
    ]
    out += [f"- {c}" for c in summary_claims(summary)]
    out += ["", "## Results", "", markdown_table(rows).rstrip("\n"), ""]
    if figures:
        out += ["## Figures", ""]
        for name, path in figures.items():
            caption = figure_caption(name)
            out += [f"### {caption}", "", f"![{caption}]({figure_link(path, report_dir)})", ""]
    out += [
        "## Parameters",
        "",
        f"- params hash: `{params_hash}`",
        f"- git revision: `{git_rev}`",
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
