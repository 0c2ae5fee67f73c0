"""Rewrite a kept study's report from its metrics, without training.

    lottery report DIR...

A kept study (such as `reports/results/lenet-5trials-10k`) holds `metrics/`, the exact
`params.yaml` and `figures/`. `regenerate` redraws the figures drawn from metrics alone,
keeps the others (learning curves, masks), and rewrites report.md, summary.json,
statistics.json and the dvc plots tables beside them, carrying the training run's params
hash and git revision over from the existing report. The committed kept studies
regenerate byte for byte (tests/report/test_report.py).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from lottery.analysis import results
from lottery.core.errors import UserError, guarded
from lottery.core.io import read_yaml
from lottery.report import figures, text

#: The provenance lines of a report (`text.render_report`'s "Parameters" section).
_PROVENANCE = re.compile(r"^- (params hash|git revision): `([^`]*)`$", re.MULTILINE)
#: How this entry names itself in usage and messages.
PROG = "lottery report"


def regenerate(root: str | Path) -> Path:
    """Rewrite the report of the kept study at `root` (see the module docstring); returns
    the report's path."""
    root = Path(root)
    metrics = results.load_metrics(root)
    runs = results.runs_frame(metrics)
    figures.metric_figures(metrics, root / "figures")
    old = (root / "report.md").read_text() if (root / "report.md").is_file() else ""
    provenance = dict(_PROVENANCE.findall(old))
    params = read_yaml((root / "params.yaml").read_text())
    settings = {k: v for k, v in params.items() if k != "pipeline"}
    summary = text.summary_for(runs, settings)
    report = text.render_report(
        runs,
        text.figure_order(root / "figures"),
        settings,
        provenance.get("params hash", "unknown"),
        provenance.get("git revision", "unknown"),
        root,
    )
    text.write_outputs(
        runs, report, summary, root / "report.md", root / "plots", root / "summary.json"
    )
    return root / "report.md"


def main(argv: Sequence[str] | None = None) -> None:
    """`lottery report DIR...`: regenerate each kept study's report."""
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Regenerate kept studies' reports (reports/results/NAME) from their "
        "metrics, without training.",
    )
    ap.add_argument(
        "study", nargs="+", type=Path, help="a kept study's directory (metrics/, params.yaml)"
    )
    args = ap.parse_args(argv)

    def body() -> None:
        for root in args.study:
            if not (root / "params.yaml").is_file() or not (root / "metrics").is_dir():
                raise UserError(
                    f"{root}: not a kept study (it needs metrics/ and params.yaml, as "
                    "reports/results/NAME has)."
                )
            print(f"wrote {regenerate(root)}")

    raise SystemExit(guarded(body, PROG))
