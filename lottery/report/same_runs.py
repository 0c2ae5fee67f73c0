"""Are two studies the same run by run? Every weights and mask file, and every curve.

`lottery same BASE NEW --artifacts` adds this to the reported numbers: for the runs of
the given trials and reinit draws that both workspaces hold (their `artifacts/`), it
compares the bytes of each `.npz` file (θ0, masks, rewind and trained weights) and each
run's curves at the evaluations both made (a run with patience stops evaluating earlier;
the evaluations it did make must be the other run's, bit for bit). `.npz` files are
written deterministically (`lottery.core.io.save_npz`), so equal arrays are equal bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lottery.core import io
from lottery.core.errors import UserError
from lottery.core.paths import Layout, parse_run_key

#: Folders of artifacts/ that hold no run (the data split is the same file for every run).
NOT_RUNS = {"data"}
CURVES = "curves"
#: Curve columns read at the validation evaluations, and those read at the test ones.
VAL_KEYS = ("train_loss", "val_loss", "val_accuracy")
TEST_KEYS = ("test_loss", "test_accuracy")
SHOWN = 6


@dataclass
class Row:
    """One (condition, file) line: how many runs were compared and which differ."""

    condition: str
    kind: str
    compared: int = 0
    differ: list[str] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)

    @property
    def identical(self) -> int:
        return self.compared - len(self.differ)


def _selected(key: str, trials: Sequence[int] | None, draws: Sequence[int] | None) -> bool:
    try:
        trial, repeat = parse_run_key(key)
    except ValueError:
        return False
    return (trials is None or trial in trials) and (draws is None or (repeat or 0) in draws)


def _artifacts(root: Path) -> Path:
    art = Layout(root).artifacts
    if not art.is_dir():
        raise UserError(
            f"{root}: no artifacts/ folder; --artifacts compares two workspaces that ran "
            "`dvc repro` (a kept study holds no weights), or run `dvc pull` there first."
        )
    return art


def run_files(
    root: Path, trials: Sequence[int] | None, draws: Sequence[int] | None
) -> dict[str, Path]:
    """`ticket/r03/t0/next_mask.npz` -> its path, for every `.npz` of a selected run."""
    art = _artifacts(root)
    return {
        p.relative_to(art).as_posix(): p
        for p in sorted(art.rglob("*.npz"))
        if p.relative_to(art).parts[0] not in NOT_RUNS and _selected(p.parent.name, trials, draws)
    }


def run_curves(
    root: Path, trials: Sequence[int] | None, draws: Sequence[int] | None
) -> dict[str, dict[str, Any]]:
    """`ticket/r03/t0` -> that run's curves, for every selected run."""
    art = _artifacts(root)
    out = {}
    for p in sorted(art.rglob("curves.json")):
        stage = p.parent.relative_to(art).as_posix()
        for key, curve in io.read_json(p)["runs"].items():
            if _selected(key, trials, draws):
                out[f"{stage}/{key}"] = curve
    return out


def _at(curve: Mapping[str, Any], grid: str, keys: Sequence[str]) -> dict[float, tuple[Any, ...]]:
    columns = [curve[k] for k in keys if k in curve]
    return {it: tuple(c[i] for c in columns) for i, it in enumerate(curve.get(grid, []))}


def curves_agree(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two runs' curves hold the same values at every evaluation both made."""
    for grid, keys in (("iteration", VAL_KEYS), ("test_iteration", TEST_KEYS)):
        pa, pb = _at(a, grid, keys), _at(b, grid, keys)
        if any(pa[it] != pb[it] for it in pa.keys() & pb.keys()):
            return False
    return True


def compare(
    base: Path, new: Path, trials: Sequence[int] | None, draws: Sequence[int] | None
) -> list[Row]:
    """Per condition and file kind (and `curves`): the runs compared and those that differ."""
    rows: dict[tuple[str, str], Row] = {}

    def row(rel: str, kind: str) -> Row:
        cond = rel.split("/")[0]
        return rows.setdefault((cond, kind), Row(cond, kind))

    fa, fb = run_files(base, trials, draws), run_files(new, trials, draws)
    for rel in sorted(fa.keys() | fb.keys()):
        r = row(rel, rel.rsplit("/", 1)[1])
        run = rel.rsplit("/", 1)[0]
        if rel not in fa or rel not in fb:
            r.unpaired.append(run)
            continue
        r.compared += 1
        if io.sha256_file(fa[rel]) != io.sha256_file(fb[rel]):
            r.differ.append(run)
    ca, cb = run_curves(base, trials, draws), run_curves(new, trials, draws)
    for run in sorted(ca.keys() | cb.keys()):
        r = row(run, CURVES)
        if run not in ca or run not in cb:
            r.unpaired.append(run)
            continue
        r.compared += 1
        if not curves_agree(ca[run], cb[run]):
            r.differ.append(run)
    return sorted(rows.values(), key=lambda r: (r.condition, r.kind == CURVES, r.kind))


def _runs(names: Sequence[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def render(rows: Sequence[Row]) -> str:
    """The Markdown section `lottery same --artifacts` appends."""
    lines = [
        "## Run by run: weights, masks and curves",
        "",
        "Each `.npz` file of each run compared byte for byte; `curves`: each run's curves "
        "compared at the evaluations both runs made.",
        "",
        "| condition | file | runs | identical | differ |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.condition} | {r.kind} | {r.compared} | {r.identical} "
            f"| {_runs(r.differ) if r.differ else '–'} |"
        )
    unpaired = [run for r in rows for run in r.unpaired]
    if unpaired:
        lines += ["", f"Only in one of the two ({len(unpaired)}): {_runs(unpaired)}."]
    return "\n".join([*lines, ""])


def differing(rows: Sequence[Row]) -> int:
    """How many (run, file) pairs differ or have no counterpart."""
    return sum(len(r.differ) + len(r.unpaired) for r in rows)
