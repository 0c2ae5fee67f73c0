"""`lottery audit` finds DVC's cache where DVC's config puts it, not at a fixed path."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import copy_study, run
from tests.test_audit import audit, messages


def test_audit_follows_a_cache_moved_with_dvc_cache_dir(tiny_study: Path, tmp_path: Path) -> None:
    study = copy_study(tiny_study, tmp_path / "study")
    moved = tmp_path / "elsewhere" / "cache"
    moved.parent.mkdir()
    shutil.move(study / ".dvc" / "cache", moved)
    run(study, "dvc", "cache", "dir", str(moved))
    code, result = audit(study)
    assert code == 0, messages(result)
    # Without a cache the directory outputs' manifests are missing, and the audit says so.
    shutil.rmtree(moved)
    code, result = audit(study)
    assert code == 1
    assert "the DVC cache has no manifest" in messages(result, check="dvc")
