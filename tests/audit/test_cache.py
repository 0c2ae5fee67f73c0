"""`lottery audit` finds DVC's cache where DVC's config puts it, not at a fixed path, and
without the cache (`dvc gc`, a clone before `dvc pull`) checks each directory output as
a whole, naming one that changed once, with a fix that exists."""

from __future__ import annotations

import shutil
from pathlib import Path

from lottery.core.arch import LENET
from lottery.core.masks import load_mask, save_mask
from tests.conftest import copy_study, run
from tests.helpers import R01, audit, messages


def test_audit_follows_a_cache_moved_with_dvc_cache_dir(tiny_study: Path, tmp_path: Path) -> None:
    study = copy_study(tiny_study, tmp_path / "study")
    moved = tmp_path / "elsewhere" / "cache"
    moved.parent.mkdir()
    shutil.move(study / ".dvc" / "cache", moved)
    run(study, "dvc", "cache", "dir", str(moved))
    code, result = audit(study)
    assert code == 0, messages(result)
    # Without a cache the directory outputs' manifests are missing: each output's own
    # hash (DVC's `.dir` hash of the files on disk) still agrees with dvc.lock.
    shutil.rmtree(moved)
    code, result = audit(study)
    assert code == 0, messages(result)

    # One changed file: its output is named once; with no remote, no `dvc fetch` advice.
    mask = load_mask(study / R01, arch=LENET)
    mask["fc2"][3, 7] = ~mask["fc2"][3, 7]
    (study / R01).unlink()
    save_mask(study / R01, mask, arch=LENET)
    code, result = audit(study)
    assert code == 1
    found = messages(result, check="dvc")
    assert found.count("\n") == 0, found
    assert "1 directory output(s) differ from what dvc.lock records" in found
    assert "artifacts/ticket/r01 (stage ticket@r01)" in found
    assert "no DVC remote is configured" in found and "dvc fetch" not in found
    run(study, "dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    code, result = audit(study)
    assert "`dvc fetch` gets the manifests from the remote" in messages(result, check="dvc")
