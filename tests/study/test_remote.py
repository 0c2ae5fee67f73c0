"""A DVC remote round trip: push a completed study, clone it, pull, and `dvc repro` reruns
nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import base_env, copy_study, ran_stages, run
from tests.helpers import file_digests


def test_remote_push_clone_pull_reruns_nothing(tiny_study: Path, tmp_path: Path) -> None:
    origin = copy_study(tiny_study, tmp_path / "origin")
    remote = tmp_path / "remote"
    run(origin, "dvc", "remote", "add", "-d", "shared", str(remote))
    (origin / "repro.log").unlink(missing_ok=True)
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-q", "-m", "tiny study results")
    pushed = run(origin, "dvc", "push")
    assert "pushed" in pushed.stdout, pushed.stdout
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(origin), str(clone)], check=True, env=base_env(), timeout=300
    )
    # Git carries only DVC's .gitignore files under artifacts/; the data comes from the remote.
    assert not [
        p for p in (clone / "artifacts").rglob("*") if p.is_file() and p.name != ".gitignore"
    ]
    run(clone, "dvc", "pull")
    assert (clone / "artifacts" / "ticket" / "r02" / "t1" / "next_mask.npz").is_file()
    status = run(clone, "dvc", "status").stdout
    assert "up to date" in status, status
    repro = run(clone, "dvc", "repro")
    assert ran_stages(repro.stdout) == [] and "Running stage" not in repro.stdout, repro.stdout
    assert not (clone / "mlflow.db").exists()  # nothing ran, nothing recorded
    assert file_digests(clone) == file_digests(origin)
