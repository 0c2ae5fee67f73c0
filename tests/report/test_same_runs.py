"""`lottery same --artifacts`: two workspaces compared run by run (every .npz file's bytes,
every curve at the evaluations both made), on the real tiny study and copies of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lottery.core.errors import UserError
from lottery.core.io import save_npz
from lottery.report import same_runs
from tests.conftest import ROOT, copy_study, run


def by_kind(rows: list[same_runs.Row]) -> dict[tuple[str, str], same_runs.Row]:
    return {(r.condition, r.kind): r for r in rows}


def test_a_study_against_its_copy_is_identical_run_by_run(tiny_study: Path, tmp_path: Path) -> None:
    rows = same_runs.compare(tiny_study, tiny_study, None, None)
    kinds = by_kind(rows)
    # The tiny study: 2 trials, 2 rounds, both controls.
    assert kinds[("ticket", "next_mask.npz")].compared == 2 * 3
    assert kinds[("reinit", "trained.npz")].compared == 2 * 2
    assert kinds[("random", "curves")].compared == 2 * 2
    assert same_runs.differing(rows) == 0
    only_t1 = same_runs.compare(tiny_study, tiny_study, [1], [0])
    assert by_kind(only_t1)[("ticket", "next_mask.npz")].compared == 3


def test_a_changed_mask_and_a_changed_curve_are_named(tiny_study: Path, tmp_path: Path) -> None:
    copy = copy_study(tiny_study, tmp_path / "copy")
    mask = copy / "artifacts/ticket/r01/t1/next_mask.npz"
    with np.load(mask) as z:
        arrays = {k: z[k].copy() for k in z.files}
    first = next(iter(arrays))
    arrays[first].flat[0] = not arrays[first].flat[0]
    save_npz(mask, arrays)
    curves_file = copy / "artifacts/random/r02/curves.json"
    curves = json.loads(curves_file.read_text())
    curves["runs"]["t0"]["val_loss"][1] += 1e-7
    curves_file.write_text(json.dumps(curves))
    kinds = by_kind(same_runs.compare(tiny_study, copy, None, None))
    assert kinds[("ticket", "next_mask.npz")].differ == ["ticket/r01/t1"]
    assert kinds[("random", "curves")].differ == ["random/r02/t0"]
    assert kinds[("ticket", "trained.npz")].differ == []

    proc = run(ROOT, "lottery", "same", str(tiny_study), str(copy), "--artifacts", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "| ticket | next_mask.npz | 6 | 5 | `ticket/r01/t1` |" in proc.stdout, proc.stdout


def test_a_curve_that_stops_early_agrees_where_both_evaluated(
    tiny_study: Path, tmp_path: Path
) -> None:
    """What patience does to a control's curve: fewer evaluations, the same values."""
    copy = copy_study(tiny_study, tmp_path / "copy")
    curves_file = copy / "artifacts/reinit/r01/curves.json"
    curves = json.loads(curves_file.read_text())
    curve = curves["runs"]["t0-rep0"]
    for k in ("iteration", "train_loss", "val_loss", "val_accuracy"):
        curve[k] = curve[k][:1]
    curves_file.write_text(json.dumps(curves))
    rows = same_runs.compare(tiny_study, copy, None, None)
    assert by_kind(rows)[("reinit", "curves")].differ == []
    # A run one side lacks is named, not skipped.
    (copy / "artifacts/random/r02/t1/trained.npz").unlink()
    rows = same_runs.compare(tiny_study, copy, None, None)
    assert by_kind(rows)[("random", "trained.npz")].unpaired == ["random/r02/t1"]
    assert same_runs.differing(rows) == 1


def test_artifacts_need_two_workspaces(tmp_path: Path) -> None:
    kept = ROOT / "reports/results/lenet-5trials-50k-horizon"
    with pytest.raises(UserError, match="no artifacts/ folder"):
        same_runs.compare(kept, kept, None, None)
