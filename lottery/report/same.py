"""Are two studies' reported numbers the same? Every number of the report, compared.

    lottery same BASE NEW [--trials T ...] [--draws D ...] [--artifacts] [--out FILE]

The numbers are those behind the report: statistics.json and summary.json as the report
stage computes them from the metrics (every cell's mean, min, max and 95% interval of the
early-stop iteration and the test accuracies, its censored runs, every ticket − dense and
ticket − control difference with its p, the picks and their bootstrap shares). They are
computed here from each study's metrics, restricted to the given trials and reinit draws,
so that the first two trials of a 5-trial, 3-draw study can be set against a 2-trial,
1-draw study of the same seeds (a network's bits do not depend on its neighbours, so the
same network is the same run in both).

This is the patience evidence's test: the same study with patience 0 and with the preset's
patience must give the same numbers, and where one differs it is named with both values.
Prints how many numbers agree and every one that differs (Markdown, or `--out`); exits 1
when any differs. With `--artifacts` (two workspaces), it also compares every run's weights,
masks and curves (`lottery.report.same_runs`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lottery.analysis import results
from lottery.core import io
from lottery.core.errors import UserError, guarded
from lottery.report import dvc_tables, same_runs, text

PROG = "lottery same"


def restricted_runs(
    root: Path, trials: Sequence[int] | None, draws: Sequence[int] | None
) -> pd.DataFrame:
    """The runs of the study at `root` (every metrics file), only those of `trials` and
    reinit `draws` where given (a ticket or random-prune run is draw 0)."""
    runs = results.runs_frame(results.load_metrics(root))
    if trials is not None:
        missing = sorted(set(trials) - set(runs["trial"]))
        if missing:
            raise UserError(
                f"{root}: has no trial {missing[0]} (trials: {sorted(set(runs['trial']))})."
            )
        runs = runs[runs["trial"].isin(trials)]
    if draws is not None:
        runs = runs[runs["repeat"].isin(draws)]
    return runs.reset_index(drop=True)


def reported_numbers(root: Path, runs: pd.DataFrame) -> dict[str, Any]:
    """statistics.json and summary.json of `runs`, as the report stage writes them, under
    the settings of `root`'s params.yaml (its match margin and validation size)."""
    settings = io.read_yaml((root / "params.yaml").read_text())
    summary = text.summary_for(runs, settings)
    censored = results.censor(runs, summary.window)
    return {
        "summary": dvc_tables.summary_json(summary),
        "statistics": dvc_tables.statistics_json(summary, text.cells(censored)),
    }


def leaves(tree: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted path, value) of every number, string, bool and null in a JSON tree."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, tree


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def differences(
    base: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[int, list[tuple[str, Any, Any]]]:
    """(how many leaves agree, [(path, BASE value, NEW value)] of those that do not; a leaf
    one side lacks counts as differing, with None on that side)."""
    a, b = dict(leaves(base)), dict(leaves(new))
    diff = [
        (k, a.get(k), b.get(k))
        for k in sorted(a.keys() | b.keys())
        if not _equal(a.get(k), b.get(k))
    ]
    return len(a.keys() | b.keys()) - len(diff), diff


def _value(v: Any) -> str:
    return "–" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


def render(
    base: Path, new: Path, agree: int, diff: Sequence[tuple[str, Any, Any]], scope: str
) -> str:
    lines = [
        f"# The same numbers? `{base}` and `{new}`",
        "",
        f"Every number behind the report (statistics.json and summary.json), computed from "
        f"each study's metrics{scope}.",
        "",
    ]
    if not diff:
        return "\n".join([*lines, f"All {agree} numbers are identical.", ""])
    lines += [
        f"{agree} of {agree + len(diff)} numbers are identical; {len(diff)} differ:",
        "",
        "| number | BASE | NEW | NEW − BASE |",
        "|---|---:|---:|---:|",
    ]
    for path, a, b in diff:
        delta = _value(b - a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else ""
        lines.append(f"| `{path}` | {_value(a)} | {_value(b)} | {delta} |")
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("base", type=Path, help="a study (the project, or a kept copy)")
    ap.add_argument("new", type=Path, help="the study set against it")
    ap.add_argument("--trials", type=int, nargs="+", help="only these trials, in both")
    ap.add_argument("--draws", type=int, nargs="+", help="only these reinit draws, in both")
    ap.add_argument(
        "--artifacts",
        action="store_true",
        help="also compare each run's .npz files and curves (two workspaces' artifacts/)",
    )
    ap.add_argument("--out", type=Path, help="write the Markdown here (default: stdout)")
    args = ap.parse_args(argv)

    def body() -> int:
        numbers = []
        for root in (args.base, args.new):
            if not (root / "params.yaml").is_file() or not (root / "metrics").is_dir():
                raise UserError(f"{root}: not a study (it needs metrics/ and params.yaml).")
            numbers.append(reported_numbers(root, restricted_runs(root, args.trials, args.draws)))
        agree, diff = differences(*numbers)
        scope = "".join(
            f", {name} {' '.join(map(str, v))} only"
            for name, v in (("trials", args.trials), ("reinit draws", args.draws))
            if v is not None
        )
        md = render(args.base, args.new, agree, diff, scope)
        files = 0
        if args.artifacts:
            rows = same_runs.compare(args.base, args.new, args.trials, args.draws)
            md += "\n" + same_runs.render(rows)
            files = same_runs.differing(rows)
        if args.out:
            io.write_text(args.out, md)
            counted = f", {files} run files differ" if args.artifacts else ""
            print(f"wrote {args.out}: {agree} numbers identical, {len(diff)} differ{counted}")
        else:
            print(md, end="")
        return 1 if diff or files else 0

    raise SystemExit(guarded(body, PROG))
