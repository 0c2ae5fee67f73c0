"""`lottery same`: every number behind two studies' reports, compared, on committed kept
studies (real metrics): a study against itself, its first trials against a copy that holds
only those, and one changed run named with both values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import ROOT, run

KEPT = ROOT / "reports/results/lenet-5trials-50k-3draws"


def only_trials(src: Path, dest: Path, trials: set[int], draws: set[int]) -> Path:
    """A copy of a kept study whose metrics hold only the runs of `trials` and `draws`."""
    shutil.copytree(src, dest)
    for f in (dest / "metrics").rglob("*.json"):
        m = json.loads(f.read_text())
        m["runs"] = {
            k: r
            for k, r in m["runs"].items()
            if int(k.split("-")[0][1:]) in trials
            and (int(k.split("rep")[1]) if "rep" in k else 0) in draws
        }
        f.write_text(json.dumps(m))
    return dest


def test_a_study_against_its_own_runs_is_all_identical(tmp_path: Path) -> None:
    proc = run(ROOT, "lottery", "same", str(KEPT), str(KEPT))
    assert proc.returncode == 0 and "numbers are identical." in proc.stdout, proc.stdout
    # The first two trials and draw 0 of it, against a study that holds only those runs.
    small = only_trials(KEPT, tmp_path / "small", {0, 1}, {0})
    args = ["--trials", "0", "1", "--draws", "0"]
    same = run(ROOT, "lottery", "same", str(KEPT), str(small), *args)
    assert same.returncode == 0 and "All " in same.stdout, same.stdout
    # Without the restriction they differ, and each difference is named.
    out = tmp_path / "same.md"
    diff = run(ROOT, "lottery", "same", str(KEPT), str(small), "--out", str(out), check=False)
    assert diff.returncode == 1 and "differ" in diff.stdout, diff.stdout
    text = out.read_text()
    assert "| `statistics.cells.ticket.r00.early_stop_iteration.mean` |" in text, text[:2000]


def test_one_changed_run_is_named_with_both_values(tmp_path: Path) -> None:
    small = only_trials(KEPT, tmp_path / "small", {0, 1}, {0})
    changed = tmp_path / "changed"
    shutil.copytree(small, changed)
    f = changed / "metrics/ticket/r07.json"
    m = json.loads(f.read_text())
    m["runs"]["t1"]["early_stop_iteration"] += 100
    f.write_text(json.dumps(m))
    proc = run(ROOT, "lottery", "same", str(small), str(changed), check=False)
    assert proc.returncode == 1, proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| `")]
    assert any(
        ln.startswith("| `statistics.cells.ticket.r07.early_stop_iteration.mean` |") for ln in rows
    )
    assert all(
        ".r07." in ln or "picks" in ln or "earliest" in ln or "summary" in ln for ln in rows
    ), rows
    bad = run(ROOT, "lottery", "same", str(small), str(tmp_path / "nothing"), check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: "), bad.stderr


#: The patience evidence's comparison: the paper study's first two trials and first reinit
#: draw (its preset's patience) against the same study trained with patience 0.
PATIENCE_ARGS = (
    "reports/results/lenet-5trials-50k-horizon",
    "reports/patience",
    "--trials",
    "0",
    "1",
    "--draws",
    "0",
)


def test_the_committed_patience_comparison_is_regenerated_from_the_metrics() -> None:
    proc = run(ROOT, "lottery", "same", *PATIENCE_ARGS, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout == (ROOT / "reports/patience/same.md").read_text()
