"""`lottery keep NAME`: a finished study kept under reports/results/NAME, whole, from a
real `dvc repro` (the tiny study), refusing what is not finished or already there."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.conftest import copy_study, run, write_params

INDEX = """# Kept studies

| study | dataset / network | size | protocol | what it shows | README |
|---|---|---|---|---|---|
| `old` | mnist / mlp | 1 × 1 | horizon | something | [README](old/README.md) |

Text after the table.
"""


def test_keep_copies_a_finished_study_that_regenerates_byte_for_byte(
    tiny_study: Path, tmp_path: Path
) -> None:
    study = copy_study(tiny_study, tmp_path / "study")
    results = study / "reports/results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "README.md").write_text(INDEX)
    out = run(study, "lottery", "keep", "baseline")
    kept = results / "baseline"
    assert "reports/results/baseline" in out.stdout
    assert (kept / "params.yaml").read_bytes() == (study / "params.yaml").read_bytes()
    assert (kept / "dvc.lock").read_bytes() == (study / "dvc.lock").read_bytes()
    for name in ("report.md", "summary.json", "statistics.json"):
        assert (kept / name).read_bytes() == (study / "reports" / name).read_bytes(), name
    assert sorted(p.name for p in (kept / "metrics").rglob("*.json")) == sorted(
        p.name for p in (study / "metrics").rglob("*.json")
    )
    assert (kept / "figures/accuracy_vs_remaining.png").is_file()
    readme = (kept / "README.md").read_text()
    assert "lottery keep baseline" in readme and "2 × 30 (2 rounds" in readme, readme
    # The index gains one row, at the end of its table; the rest is kept.
    index = (results / "README.md").read_text()
    lines = index.splitlines()
    row = lines.index(next(ln for ln in lines if ln.startswith("| `baseline` |")))
    assert lines[row - 1].startswith("| `old` |") and "Text after the table." in index
    assert index.count("| `baseline` |") == 1
    # What `lottery report` writes from the kept metrics is what the pipeline wrote (both
    # with the project's own code, so with the same patience evidence: here none).
    copy = tmp_path / "regenerated"
    shutil.copytree(kept, copy)
    code = "import sys; sys.path.insert(0, '.'); from lottery.report.regenerate import main; main()"
    run(study, sys.executable, "-c", code, str(copy))
    for name in ("report.md", "summary.json", "statistics.json", "plots/accuracy_ticket.json"):
        assert (copy / name).read_bytes() == (kept / name).read_bytes(), name
    # Kept once: a second keep under the same name is refused, --force replaces it.
    again = run(study, "lottery", "keep", "baseline", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr, again.stderr
    run(study, "lottery", "keep", "baseline", "--force")
    assert (results / "README.md").read_text().count("| `baseline` |") == 1


def test_keep_refuses_a_study_that_is_not_up_to_date(tiny_study: Path, tmp_path: Path) -> None:
    study = copy_study(tiny_study, tmp_path / "study")
    write_params(study, {"train": {"learning_rate": 0.002}})
    proc = run(study, "lottery", "keep", "edited", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "dvc repro" in proc.stderr and "dense" in proc.stderr, proc.stderr
    results = study / "reports/results"
    assert not results.exists() or list(results.iterdir()) == []
    bad = run(study, "lottery", "keep", "../escape", check=False)
    assert bad.returncode == 2 and "not a study name" in bad.stderr, bad.stderr
