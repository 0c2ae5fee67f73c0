"""The chain check on a small real chain (θ0, m_0, m_1 of a tiny MLP, with a dvc.lock that
records them): the walk down to θ0, and each hash it compares, reported when it differs
and silent when it agrees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lottery.audit.chain import Auditor
from lottery.audit.links import Link, Problem
from lottery.core.masks import ones_mask, save_mask
from tests.audit.chain_files import ARCH, M0, M1, THETA0, chain_lock, make_chain, write_weights

NO_RUN = Problem(M1, "lineage", "its lineage records no MLflow run id")
SIDE = M1.replace(".npz", ".json")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The chain without MLflow runs (m_1 names none: one lineage problem), its dvc.lock."""
    make_chain(tmp_path)
    (tmp_path / "dvc.lock").write_text(chain_lock(tmp_path))
    return tmp_path


def audited(root: Path, target: str = M1) -> Auditor:
    auditor = Auditor(root, f"sqlite:///{root / 'mlflow.db'}", ARCH)
    auditor.mask(target)
    return auditor


def found(auditor: Auditor, path: str, check: str) -> list[str]:
    return [p.message for p in auditor.problems() if p.path == path and p.check == check]


def edit_lineage(root: Path, rel: str, **changes: object) -> None:
    side = root / rel.replace(".npz", ".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), **changes}))


def test_a_clean_chain_is_walked_to_theta0(root: Path) -> None:
    auditor = audited(root)
    assert auditor.chain(M1) == [M1, M0, THETA0]
    links = auditor.links
    assert [links[p].label for p in auditor.chain(M1)] == ["m_1", "m_0", "θ0"]
    assert [links[p].stage for p in auditor.chain(M1)] == ["dense", "init", "init"]
    assert links[M1].sha256 == links[M1].recorded_sha256 is not None
    assert auditor.problems() == [NO_RUN]


def test_a_mask_whose_hash_differs_from_its_sidecar_is_named(root: Path) -> None:
    save_mask(root / M1, ones_mask(ARCH), arch=ARCH)  # m_0's mask under m_1's lineage
    auditor = audited(root)
    (message,) = found(auditor, M1, "file")
    assert message.startswith("mask hashes to ")
    assert f"its lineage {SIDE} records" in message
    assert "the mask file was changed or replaced" in message
    assert message.endswith(f"(it is the mask recorded for {M0})")
    assert "dvc.lock (stage dense) records" in found(auditor, M1, "dvc")[0]
    assert found(auditor, M0, "file") == [] and found(auditor, THETA0, "file") == []


def test_a_replaced_theta0_is_named_once_and_by_every_link(root: Path) -> None:
    write_weights(root, THETA0, seed=7)
    auditor = audited(root)
    (message,) = found(auditor, THETA0, "file")
    assert message.startswith("θ0 file hashes to ") and message.endswith("θ0 was replaced")
    for rel in (M0, M1):
        assert any(
            "records θ0 " in m and f"but {THETA0} hashes to" in m
            for m in found(auditor, rel, "lineage")
        ), rel
    assert any("records init_sha256" in m for m in found(auditor, M1, "lineage"))


def test_an_unreadable_theta0_record_is_no_hash_disagreement(root: Path) -> None:
    (root / THETA0).with_suffix(".json").write_text("[1, 2")
    auditor = audited(root)
    (message,) = found(auditor, THETA0, "lineage")
    assert message.startswith("artifacts/init/t0/theta0.json: unreadable")
    assert found(auditor, THETA0, "file") == []


def test_a_wrong_parent_hash_and_a_wrong_place_are_named(root: Path) -> None:
    edit_lineage(root, M1, parent_sha256="ab" * 32, round=2)
    problems = found(audited(root), M1, "lineage")
    assert f"{SIDE} records parent hash abababababababab…, but its parent {M0} hashes to" in (
        "\n".join(problems)
    )
    assert any("records round 2, but the file lies where round 1 belongs" in m for m in problems)


def test_problems_can_be_asked_twice(root: Path) -> None:
    """The walk is done once; asking for the problems changes nothing."""
    save_mask(root / M1, ones_mask(ARCH), arch=ARCH)
    auditor = audited(root)
    assert auditor.problems() == auditor.problems()
    assert not any(p.message.endswith(")") for p in auditor.links[M1].problems if p.check == "file")


def test_a_mask_outside_the_layout_has_no_expected_place(root: Path) -> None:
    """A file no layout place explains still gets a link, named by its file name."""
    auditor = Auditor(root, f"sqlite:///{root / 'mlflow.db'}", ARCH)
    link = auditor.mask("elsewhere/mask.npz")
    assert isinstance(link, Link) and link.label == "mask.npz"
    assert any(
        "lineage file not found" in m for m in found(auditor, "elsewhere/mask.npz", "lineage")
    )
