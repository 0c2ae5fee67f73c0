"""Keep the workspace's finished study under reports/results/NAME, beside the others.

    lottery keep NAME [--force]

A kept study is what `lottery report` and `lottery compare` read: its `params.yaml` and
`dvc.lock`, the per-run metrics (`metrics/`), and the report with everything beside it
(report.md, summary.json, statistics.json, plots/, figures/), plus a README that says where
it came from. So after a first `dvc repro`, `lottery keep baseline` leaves a baseline to
compare later studies against, in git, whatever `dvc exp` or the workspace do next.

Only a study that `dvc status` finds up to date is kept (its files then are what its params
give), and the copy appears whole or not at all (written beside, then renamed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lottery.core.errors import UserError, guarded
from lottery.core.io import git_revision, project_root
from lottery.core.params import Params, load_params
from lottery.core.paths import Layout
from lottery.report.dvc_tables import STATISTICS_FILE

PROG = "lottery keep"
#: A name that is one directory, readable in a table and a shell.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
#: The index of kept studies, and how its table's rows start.
INDEX = "README.md"
ROW = re.compile(r"^\| `[^`]+` \|", re.MULTILINE)


def stale_stages(root: Path) -> list[str]:
    """The stages `dvc status` lists as changed ([] when the study is up to date)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        msg = " ".join((proc.stderr or proc.stdout).split())[-300:]
        raise UserError(f"`dvc status` failed in {root} ({msg}); fix it, then rerun.")
    return sorted(json.loads(proc.stdout or "{}"))


def _files(lay: Layout) -> dict[str, Path]:
    """Kept name -> the workspace file or directory it is copied from."""
    reports = lay.reports
    return {
        "params.yaml": lay.root / "params.yaml",
        "dvc.lock": lay.root / "dvc.lock",
        "metrics": lay.metrics_dir,
        "report.md": lay.report_path(),
        "summary.json": lay.summary_metrics_path(),
        STATISTICS_FILE: reports / STATISTICS_FILE,
        "plots": lay.plots_dir(),
        "figures": lay.figures_dir(),
    }


def describe(p: Params) -> dict[str, str]:
    """The index columns that follow from the params."""
    c = p.controls
    controls = [f"reinit ×{c.reinit_repeats}"] if c.reinit else []
    controls += ["random prune"] if c.random else []
    if controls and c.rounds != "all":
        controls.append(f"at rounds {', '.join(map(str, c.rounds))}")
    hidden = "-".join(map(str, p.model.hidden))
    return {
        "data": f"{p.data.dataset} / {p.model.network}{' ' + hidden if hidden else ''}",
        "size": (
            f"{p.study.trials} × {p.train.iterations:,} ({p.study.rounds} rounds; "
            f"{', '.join(controls) or 'no controls'})"
        ),
        "protocol": f"prune.point: {p.prune.point}, patience {p.train.patience:,}",
    }


def readme(name: str, p: Params, revision: str) -> str:
    d = describe(p)
    today = datetime.date.today().isoformat()
    commit = revision.removesuffix("-dirty")
    dirty = " (its working tree had uncommitted changes)" if commit != revision else ""
    return (
        f"# {name}\n\n"
        f"Kept by `lottery keep {name}` on {today}, from git revision `{commit}`{dirty}.\n\n"
        f"- Study: {d['data']}, {d['size']}.\n"
        f"- Protocol: {d['protocol']}, Adam ε {p.train.adam_epsilon:g}.\n"
        f"- Reproduce: check out `{commit}`, copy this `params.yaml` over the project's, "
        "and `dvc repro` (the `dvc.lock` here records every stage's inputs).\n"
        "- Files: `report.md` (the report), `summary.json`, `statistics.json`, `plots/`, "
        "`figures/`, the per-run `metrics/`, `params.yaml` and `dvc.lock`.\n\n"
        "What it shows: (write it here).\n"
    )


def index_row(name: str, p: Params) -> str:
    d = describe(p)
    return (
        f"| `{name}` | {d['data']} | {d['size']} | {d['protocol']} | (write it here) | "
        f"[README]({name}/README.md) |"
    )


def add_to_index(index: Path, name: str, p: Params) -> bool:
    """Append the study's row to the index's table (after its last row); False when the
    index has no such table or lists the study already (then nothing is written)."""
    if not index.is_file():
        return False
    text = index.read_text()
    rows = list(ROW.finditer(text))
    if not rows or f"| `{name}` |" in text:
        return False
    end = text.index("\n", rows[-1].start())
    from lottery.core.io import write_text

    write_text(index, text[: end + 1] + index_row(name, p) + "\n" + text[end + 1 :])
    return True


def keep(root: Path, name: str, force: bool = False) -> Path:
    """Copy the up-to-date study at `root` to reports/results/`name`; returns its path."""
    if not NAME.match(name):
        raise UserError(
            f"{name!r} is not a study name: use letters, digits, '.', '_' and '-' (up to 80, "
            "not starting with '.' or '-'), e.g. `lottery keep baseline`."
        )
    lay = Layout(root)
    dest = lay.reports / "results" / name
    if dest.exists() and not force:
        raise UserError(f"{dest} already exists: choose another name, or rerun with --force.")
    params = load_params(root / "params.yaml")
    files = _files(lay)
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise UserError(
            f"no finished study to keep: {', '.join(missing)} missing. Run `dvc repro` first."
        )
    stale = stale_stages(root)
    more = ", …" if len(stale) > 4 else ""
    if stale:
        raise UserError(
            f"the study in {root} is not up to date with its params and code: `dvc status` "
            f"lists {len(stale)} stage(s) ({', '.join(stale[:4])}{more}). Run `dvc repro` "
            "first, then keep it."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest.parent))
    try:
        for kept, src in files.items():
            if src.is_dir():
                shutil.copytree(src, tmp / kept)
            else:
                shutil.copy2(src, tmp / kept)
        (tmp / "README.md").write_text(readme(name, params, git_revision(root)))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    add_to_index(lay.reports / "results" / INDEX, name, params)
    return dest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Keep the workspace's finished study under reports/results/NAME "
        "(report, metrics, params.yaml, dvc.lock, figures), for `lottery compare` and git.",
    )
    parser.add_argument("name", help="the kept study's directory name, e.g. baseline")
    parser.add_argument("--force", action="store_true", help="replace a kept study of that name")
    args = parser.parse_args(argv)

    def run() -> None:
        root = project_root(required=True)
        dest = keep(root, args.name, args.force)
        rel = dest.relative_to(root)
        print(
            f"kept the study in {rel}/ (its README and the index {rel.parent}/{INDEX} name "
            f"what it is). Compare a later study with `lottery compare {rel} NEW`; "
            f"commit it with `git add {rel}`."
        )

    raise SystemExit(guarded(run, PROG))
