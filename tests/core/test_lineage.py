"""The lineage record of a mask (its JSON sidecar) and the run tags that mirror it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lottery.core import lineage, masks
from lottery.core.arch import LAYER_SHAPES, LENET
from lottery.core.masks import Mask, MaskError


def random_mask(seed: int, keep: float = 0.5) -> Mask:
    rng = np.random.default_rng(seed)
    return {layer: rng.random(shape) < keep for layer, shape in LAYER_SHAPES.items()}


def record(m: Mask) -> lineage.Lineage:
    return lineage.Lineage.of(
        m,
        round=1,
        trial=0,
        condition="ticket",
        dvc_stage="dense",
        theta0_sha256="cd" * 32,
        parent_sha256="ab" * 32,
        pruning={"fc1": 0.2},
        study_hash="ef" * 8,
        git_commit="0" * 40,
        arch=LENET,
    )


def test_lineage_round_trips(tmp_path: Path) -> None:
    mask_path = tmp_path / "masks" / "round_1.npz"
    assert lineage.lineage_path(mask_path) == tmp_path / "masks" / "round_1.json"
    m = random_mask(10, keep=0.8)
    rec = record(m)
    assert rec.sha256 == masks.mask_hash(m, arch=LENET)
    assert rec.density == masks.density(m, arch=LENET)
    assert rec.percent_remaining == masks.percent_remaining(m, arch=LENET)
    assert rec.kept == masks.kept_counts(m, arch=LENET)
    assert rec.round == 1 and rec.pruning == {"fc1": 0.2}
    masks.save_mask(mask_path, m, arch=LENET)
    lineage.write(mask_path, rec)
    assert lineage.read(mask_path) == rec
    assert lineage.read_record(mask_path) == rec.to_json()
    with pytest.raises(TypeError, match="sha256"):
        lineage.Lineage.of(m, sha256="0" * 64, arch=LENET)  # computed from the mask, never given


def test_earlier_names_are_read_under_todays(tmp_path: Path) -> None:
    m = random_mask(11)
    old = record(m).to_json()
    for new_name, old_name in (
        ("study_hash", "params_hash"),
        ("git_commit", "git_rev"),
        ("init_sha256", "start_sha256"),
    ):
        old[old_name] = old.pop(new_name)
    (tmp_path / "m.json").write_text(json.dumps(old))
    assert lineage.read(tmp_path / "m.npz") == record(m)


def test_lineage_errors(tmp_path: Path) -> None:
    with pytest.raises(MaskError, match=r"a.json: lineage file not found"):
        lineage.read(tmp_path / "a.npz")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(MaskError, match=r"b.json: unreadable"):
        lineage.read(tmp_path / "b.npz")
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(MaskError, match="JSON object"):
        lineage.read(tmp_path / "c.npz")
    (tmp_path / "d.json").write_text(json.dumps({"sha256": "ab" * 32, "round": 1}))
    with pytest.raises(MaskError, match=r"d.json: lineage lacks \['density'"):
        lineage.read(tmp_path / "d.npz")


def test_run_tags_are_the_lineage_names_under_the_prefix() -> None:
    tags = lineage.RunTags(round=2, trial=1, repeat=0, study_hash="x", init_sha256="y")
    assert tags.as_tags() == {
        "lottery.round": "2",
        "lottery.trial": "1",
        "lottery.repeat": "0",
        "lottery.study_hash": "x",
        "lottery.init_sha256": "y",
    }
    shared = {f for f in lineage.RunTags.__dataclass_fields__} & set(
        lineage.Lineage.__dataclass_fields__
    )
    assert {"study_hash", "git_commit", "init_sha256", "theta0_sha256"} <= shared
