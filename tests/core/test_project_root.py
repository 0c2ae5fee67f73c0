"""`lottery.core.io.project_root`, the one answer to "which project is this process in",
for the stages and the tracking store (DVC_ROOT first) and for the `lottery` command
(which must run inside a project)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lottery.core.errors import UserError
from lottery.core.io import project_root


def project(path: Path) -> Path:
    (path / ".dvc").mkdir(parents=True)
    (path / "dvc.yaml").write_text("stages: {}\n")
    return path


def test_the_project_above_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "study")
    (root / "reports" / "figures").mkdir(parents=True)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(root / "reports" / "figures")
    assert project_root() == root.resolve()
    assert project_root(required=True) == root.resolve()


def test_dvc_root_names_the_project_of_a_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "study")
    workspace = root / ".dvc" / "tmp" / "exps" / "run" / "abc"  # `dvc exp run --temp`
    workspace.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    assert project_root(required=True) == root.resolve()


def test_outside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root() == tmp_path.resolve()  # the store's fallback: where it stands
    with pytest.raises(UserError, match=r"is not inside a lottery project.*cd into the project"):
        project_root(required=True)
