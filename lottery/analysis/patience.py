"""Evidence for `train.patience`: what stopping early would have changed, measured.

A study trained with patience 0 (every network to the horizon) holds each network's
full validation curve. Replaying the stopping rule of `lottery.core.stopping` on it gives,
exactly, the early-stop iteration and test accuracy that patience P would have produced
(the engine evaluates the test set at every new minimum of the validation loss, so the
test accuracy at any replayed early stop is on the curve). Per condition and P this
module reports the fraction of runs whose early-stop iteration and test accuracy at
early stop are unchanged, and the fraction of training iterations P would have saved.

    lottery patience STUDY_DIR [--patience 2500 5000 10000] [--out DIR]

reads a finished study (its metrics/ and curves) or a directory this command wrote
before (its `curves.json`, read first), and writes `evidence.json`, `evidence.md` and a compact
`curves.json` (enough to recompute everything) to DIR.

The committed evidence (`reports/patience/curves.json`) also sets the reports' censoring
window (`evidence_window`, `default_window`; the rule is `lottery.analysis.censoring`'s).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lottery.analysis.censoring import CensoringWindow
from lottery.analysis.frames import load_metrics
from lottery.analysis.legacy import tested_iterations
from lottery.core import conditions, io, paths
from lottery.core.errors import UserError
from lottery.core.paths import round_name
from lottery.core.stopping import Tracker, replay

DEFAULT_PATIENCES = (2500, 5000, 10000)
CURVES_FILE = "curves.json"
#: This checkout's committed patience evidence: the reports' censoring window's.
EVIDENCE = paths.Layout(Path(__file__).resolve().parents[2]).patience_dir() / CURVES_FILE


@dataclass(frozen=True)
class RunCurve:
    """One network's full-horizon curve: what a replay needs."""

    condition: str
    round: int
    run: str
    horizon: int
    iteration: list[float]
    val_loss: list[float]
    test_iteration: list[float]
    test_accuracy: list[float]

    def test_at(self, iteration: float) -> float:
        try:
            return self.test_accuracy[self.test_iteration.index(iteration)]
        except ValueError:
            raise UserError(
                f"{self.condition} round {self.round} run {self.run}: no test evaluation at "
                f"iteration {iteration:.0f}, a minimum of its validation loss. The curve was "
                "not written by this engine (it tests at every new minimum)."
            ) from None


@dataclass(frozen=True)
class Outcome:
    """What patience P gives on one run."""

    early_stop_iteration: int
    test_accuracy_at_early_stop: float
    stop_iteration: int
    stop_reason: str


def outcome(curve: RunCurve, patience: int) -> Outcome:
    """The early stop and stop that `patience` produces on a full-horizon curve."""
    rep = replay(curve.iteration, curve.val_loss, patience, curve.horizon)
    best = curve.iteration[rep.best_index]
    return Outcome(int(best), curve.test_at(best), int(curve.iteration[rep.stop_index]), rep.reason)


@dataclass(frozen=True)
class Row:
    """One (condition, patience) line of the evidence."""

    condition: str
    patience: int
    runs: int
    early_stop_unchanged: int
    accuracy_unchanged: int
    max_accuracy_change_pp: float
    iterations_trained: float  # fraction of the horizon's iterations trained, all runs
    smallest_safe_patience: int  # the longest wait between new minima of any of its runs

    @property
    def fractions(self) -> tuple[float, float]:
        return self.early_stop_unchanged / self.runs, self.accuracy_unchanged / self.runs


def new_minima(curve: RunCurve, until: float = math.inf) -> list[int]:
    """The iterations (up to `until`) where the validation loss reached a new minimum, as
    the stopping rule counts them (`stopping.Tracker`)."""
    tracker = Tracker(0, curve.horizon)
    return [
        int(it)
        for i, (it, loss) in enumerate(zip(curve.iteration, curve.val_loss, strict=True))
        if it <= until and tracker.update(i, int(it), float(loss))
    ]


def smallest_safe_patience(curve: RunCurve) -> int:
    """The smallest patience that keeps this run's early stop: its longest wait between
    two successive new minima of the validation loss (a minimum found exactly `patience`
    iterations after the last one still counts, so that wait is enough)."""
    found = new_minima(curve)
    return max((b - a for a, b in itertools.pairwise(found)), default=0)


def evidence(curves: Sequence[RunCurve], patiences: Iterable[int]) -> list[Row]:
    """Per condition and patience: how many runs keep their early stop and accuracy."""
    rows = []
    names = sorted({c.condition for c in curves}, key=conditions.CONDITIONS.index)
    for p in patiences:
        for cond in names:
            group = [c for c in curves if c.condition == cond]
            full = [outcome(c, 0) for c in group]
            short = [outcome(c, p) for c in group]
            rows.append(
                Row(
                    condition=cond,
                    patience=p,
                    runs=len(group),
                    early_stop_unchanged=sum(
                        a.early_stop_iteration == b.early_stop_iteration
                        for a, b in zip(full, short, strict=True)
                    ),
                    accuracy_unchanged=sum(
                        a.test_accuracy_at_early_stop == b.test_accuracy_at_early_stop
                        for a, b in zip(full, short, strict=True)
                    ),
                    max_accuracy_change_pp=max(
                        abs(a.test_accuracy_at_early_stop - b.test_accuracy_at_early_stop) * 100
                        for a, b in zip(full, short, strict=True)
                    ),
                    iterations_trained=sum(s.stop_iteration for s in short)
                    / sum(c.horizon for c in group),
                    smallest_safe_patience=max(smallest_safe_patience(c) for c in group),
                )
            )
    return rows


def stop_profile(curves: Sequence[RunCurve], patience: int) -> dict[str, dict[int, float]]:
    """Per condition and round: the mean fraction of the horizon trained under `patience`
    (what `lottery bench` prices a study with)."""
    out: dict[str, dict[int, list[float]]] = {}
    for c in curves:
        frac = outcome(c, patience).stop_iteration / c.horizon
        out.setdefault(c.condition, {}).setdefault(c.round, []).append(frac)
    return {
        cond: {r: sum(v) / len(v) for r, v in sorted(rounds.items())}
        for cond, rounds in out.items()
    }


# ---------------------------------------------------------------- reading and writing


def from_study(root: Path) -> list[RunCurve]:
    """Every run's curve of a finished study (it must have trained with patience 0)."""
    out = []
    for m in load_metrics(root):
        if int(m.get("patience") or 0):
            raise UserError(
                f"{root}: {m['condition']} round {m['round']} trained with patience "
                f"{m['patience']}: the evidence needs full-horizon curves (patience 0)."
            )
        path = paths.Layout(root).curves_path(m["condition"], round_name(int(m["round"])))
        if not path.is_file():
            raise UserError(f"{path}: no curves file; run `dvc repro` (or `dvc pull`) first.")
        for key, run in io.read_json(path)["runs"].items():
            out.append(
                RunCurve(
                    condition=m["condition"],
                    round=int(m["round"]),
                    run=key,
                    horizon=int(m["iterations"]),
                    iteration=run["iteration"],
                    val_loss=run["val_loss"],
                    test_iteration=tested_iterations(run),
                    test_accuracy=run["test_accuracy"],
                )
            )
    return out


def from_file(path: Path) -> list[RunCurve]:
    return [RunCurve(**c) for c in io.read_json(path)["runs"]]


# ------------------------------------------------------------- the censoring window


def evidence_window(path: str | Path = EVIDENCE) -> CensoringWindow:
    """W from a patience evidence file (this module's curves.json): the longest wait
    between two successive new minima of the validation loss over its runs, recomputed
    from their curves. Without the file, the last-two-evaluations rule (and says so)."""
    path = Path(path)
    if not path.is_file():
        return CensoringWindow(
            None,
            f"no patience evidence was found ({path.name} of `lottery patience`), so the "
            "narrowest rule applies: the minimum in the last "
            "two evaluations of a run that reached its horizon",
        )
    curves = from_file(path)
    wait, longest = max((smallest_safe_patience(c), i) for i, c in enumerate(curves))
    c = curves[longest]
    horizons = "/".join(f"{h:,}" for h in sorted({x.horizon for x in curves}))
    return CensoringWindow(
        wait,
        f"the longest wait between two successive new minima of the validation loss among "
        f"the {len(curves)} full-horizon runs ({horizons} iterations, patience 0) of the "
        f"patience evidence (`reports/patience/{path.name}`; {c.condition} round {c.round})",
    )


@functools.cache
def default_window() -> CensoringWindow:
    """The reports' censoring window: `evidence_window` of this checkout's evidence."""
    return evidence_window(EVIDENCE)


def markdown(rows: Sequence[Row], source: str) -> str:
    lines = [
        "# Patience evidence: what stopping early would change",
        "",
        f"Replayed on the full-horizon curves of {source} (patience 0). The columns count",
        "the runs for which patience P gives the same early-stop iteration (the minimum",
        "validation loss), and the same test accuracy there, as training to the horizon.",
        "",
        "| condition | patience | runs | early stop unchanged | accuracy unchanged "
        "| largest accuracy change | iterations trained |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        es, acc = r.fractions
        lines.append(
            f"| {r.condition} | {r.patience:,} | {r.runs} | {r.early_stop_unchanged}/{r.runs} "
            f"({es:.0%}) | {r.accuracy_unchanged}/{r.runs} ({acc:.0%}) "
            f"| {r.max_accuracy_change_pp:.2f} pp | {r.iterations_trained:.0%} |"
        )
    safe = {r.condition: r.smallest_safe_patience for r in rows}
    if safe:
        lines += [
            "",
            "The smallest patience that leaves every run of a condition unchanged (its longest "
            "wait between two successive new minima of the validation loss): "
            + ", ".join(f"{c} {p:,}" for c, p in safe.items())
            + ".",
        ]
    return "\n".join(lines) + "\n"


def write(curves: Sequence[RunCurve], patiences: Sequence[int], out: Path, source: str) -> None:
    rows = evidence(curves, patiences)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / CURVES_FILE, {"runs": [asdict(c) for c in curves]})
    doc: dict[str, Any] = {
        "source": source,
        "runs": len(curves),
        "rows": [{**asdict(r), "fractions_unchanged": list(r.fractions)} for r in rows],
        "stop_profile": {
            str(p): {
                cond: {str(k): v for k, v in rounds.items()}
                for cond, rounds in stop_profile(curves, p).items()
            }
            for p in patiences
        },
    }
    io.write_json(out / "evidence.json", doc)
    io.write_text(out / "evidence.md", markdown(rows, source))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="lottery patience", description=__doc__)
    ap.add_argument("study", type=Path, help="a finished study, or a directory written before")
    ap.add_argument("--patience", type=int, nargs="+", default=list(DEFAULT_PATIENCES))
    ap.add_argument("--out", type=Path, help="where to write (default: the study directory)")
    args = ap.parse_args(argv)
    root: Path = args.study
    out: Path = args.out or root
    try:
        if (root / CURVES_FILE).is_file():  # written before (metrics/ may be kept beside it)
            curves, source = (
                from_file(root / CURVES_FILE),
                io.read_json(root / "evidence.json")["source"],
            )
        else:
            curves, source = from_study(root), f"`{root.name}`"
            if (root / "params.yaml").is_file() and out.resolve() != root.resolve():
                out.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / "params.yaml", out / "params.yaml")
        if not curves:
            raise UserError(f"{root}: no runs found (metrics/ is empty).")
        write(curves, args.patience, out, source)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(markdown(evidence(curves, args.patience), source), end="")
