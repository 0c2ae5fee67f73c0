"""The DVC check on real dvc.lock texts: a file's md5 against what dvc.lock records for the
output holding it (a file output's own md5, or a directory output's manifest in a real
DVC cache), and what a lock that records nothing, or is not DVC's, is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lottery.audit.dvc import DvcLock, flat_keys
from lottery.audit.links import Link, Problem
from lottery.core.errors import UserError
from tests.audit.chain_files import lock_text
from tests.conftest import run

OUT = "artifacts/dense/t0/trained.npz"


def link(rel: str) -> Link:
    return Link(rel, "mask", "m", 0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A file output of stage `dense` and its dvc.lock (with the params the stage uses)."""
    (tmp_path / OUT).parent.mkdir(parents=True)
    (tmp_path / OUT).write_bytes(b"trained weights")
    params = {"dense": {"train": "{iterations: 30, learning_rate: 0.0012}", "study.seed": 0}}
    (tmp_path / "dvc.lock").write_text(lock_text(tmp_path, {"dense": [OUT]}, params))
    return tmp_path


def test_the_lock_is_real_yaml() -> None:
    """The helper writes what DVC writes: a schema 2.0 mapping of stages with outs."""
    lock = yaml.safe_load(lock_text(Path(__file__).parent, {"s": ["__init__.py"]}))
    assert lock["schema"] == "2.0"
    (out,) = lock["stages"]["s"]["outs"]
    assert out["path"] == "__init__.py" and out["hash"] == "md5" and len(out["md5"]) == 32


def test_a_file_that_agrees_names_its_stage_and_nothing_else(root: Path) -> None:
    general: list[Problem] = []
    dvc = DvcLock(root, general)
    assert dvc.findings(OUT) == ("dense", [])
    assert general == []
    assert dvc.params == {"dense": ["train.iterations", "train.learning_rate", "study.seed"]}


def test_a_changed_file_is_named_with_the_fix(root: Path) -> None:
    (root / OUT).write_bytes(b"other weights")
    stage, (message,) = DvcLock(root, []).findings(OUT)
    assert stage == "dense"
    assert message.startswith(f"{OUT} has md5 ") and "dvc.lock (stage dense) records" in message
    assert f"`dvc checkout --force {OUT}` restores" in message
    assert "`dvc repro -f -s dense` recomputes it" in message


def test_each_file_is_checked_once_for_the_first_link(root: Path) -> None:
    (root / OUT).unlink()
    dvc = DvcLock(root, [])
    first, second = link("a"), link("b")
    assert dvc.check(first, OUT) == dvc.check(second, OUT) == "dense"
    assert [p.message for p in first.problems] == [
        f"{OUT} is missing (dvc.lock records md5 {_recorded(root)})"
    ]
    assert second.problems == []


def _recorded(root: Path) -> str:
    return str(yaml.safe_load((root / "dvc.lock").read_text())["stages"]["dense"]["outs"][0]["md5"])


def test_a_file_no_stage_outputs_is_named(root: Path) -> None:
    assert DvcLock(root, []).findings("artifacts/other.npz") == (
        None,
        ["artifacts/other.npz is not an output of any stage in dvc.lock"],
    )


@pytest.mark.parametrize("text", ["", "schema: '2.0'\nstages: {}\n"])
def test_a_lock_that_records_nothing_is_a_problem(tmp_path: Path, text: str) -> None:
    (tmp_path / "dvc.lock").write_text(text)
    general: list[Problem] = []
    dvc = DvcLock(tmp_path, general)
    (problem,) = general
    assert problem.message.startswith("dvc.lock records no stage output")
    assert dvc.findings(OUT) == (None, [])  # nothing to check against: said once, above


def test_no_lock_is_a_problem(tmp_path: Path) -> None:
    general: list[Problem] = []
    DvcLock(tmp_path, general)
    assert general == [
        Problem("dvc.lock", "dvc", "no dvc.lock: the study has not been run with `dvc repro`")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stages: [\n", "not valid YAML"),
        ("- 1\n", "its top level is a list"),
        ("stages:\n  dense:\n    outs: {path: a}\n", "the outs of stage dense are not a list"),
        ("stages:\n  dense:\n    outs:\n    - md5: abc\n", "an output of stage dense has no path"),
    ],
)
def test_a_lock_that_is_not_dvcs_is_a_user_error(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "dvc.lock").write_text(text)
    with pytest.raises(UserError, match=r"git checkout dvc\.lock") as exc:
        DvcLock(tmp_path, [])
    assert expected in str(exc.value)


def test_flat_keys_of_nested_and_dotted_params() -> None:
    assert flat_keys({"train": {"a": 1, "b": {"c": 2}}, "study.seed": 0, "empty": {}}) == [
        "train.a",
        "train.b.c",
        "study.seed",
        "empty",
    ]


def test_a_directory_output_is_checked_file_by_file_through_dvcs_cache(tmp_path: Path) -> None:
    """`dvc add` makes the `.dir` manifest DVC keeps for a directory; without the cache the
    directory's own hash is compared, and a changed one is named once, as a whole."""
    run(tmp_path, "dvc", "init", "--no-scm", "-q")
    out = tmp_path / "artifacts" / "ticket" / "r01"
    out.mkdir(parents=True)
    (out / "a.npz").write_bytes(b"a")
    (out / "b.npz").write_bytes(b"b")
    run(tmp_path, "dvc", "add", "-q", "artifacts/ticket/r01")
    md5 = yaml.safe_load((tmp_path / "artifacts/ticket/r01.dvc").read_text())["outs"][0]["md5"]
    assert md5.endswith(".dir")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  ticket@r01:\n    outs:\n"
        f"    - path: artifacts/ticket/r01\n      hash: md5\n      md5: {md5}\n"
    )
    a, new = "artifacts/ticket/r01/a.npz", "artifacts/ticket/r01/new.npz"
    assert DvcLock(tmp_path, []).findings(a) == ("ticket@r01", [])
    (out / "a.npz").write_bytes(b"changed")
    (out / "new.npz").write_bytes(b"new")
    dvc = DvcLock(tmp_path, [])
    assert dvc.findings(a)[1][0].startswith(f"{a} has md5 ")
    assert dvc.findings(new)[1] == [
        f"{new} is not among the files dvc.lock records for stage ticket@r01"
    ]

    shutil.rmtree(tmp_path / ".dvc" / "cache")
    general: list[Problem] = []
    dvc = DvcLock(tmp_path, general)
    assert dvc.findings(a) == dvc.findings(new) == ("ticket@r01", [])
    (message,) = [p.message for p in general]
    assert message.startswith("1 directory output(s) differ from what dvc.lock records")
    assert "artifacts/ticket/r01 (stage ticket@r01)" in message
    assert "no DVC remote is configured" in message
    (out / "a.npz").write_bytes(b"a")
    (out / "new.npz").unlink()
    general = []
    assert DvcLock(tmp_path, general).findings(a) == ("ticket@r01", [])
    assert general == []  # the same tree as recorded: every file of it agrees
