"""`lottery.analysis.protocol`: the params that differ between two studies (as `dvc params
diff` lists them), the differences that change results (a warning) and those that make
pairing rows meaningless (refused)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lottery.analysis.protocol import (
    ABSENT,
    ParamChange,
    ProtocolError,
    params_diff,
    protocol_warnings,
    read_params,
    value_text,
)
from lottery.core.io import read_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper() -> dict[str, Any]:
    """Today's full params (the paper preset: every section), as DVC reads them."""
    params: dict[str, Any] = read_yaml((ROOT / "presets" / "paper.yaml").read_text())
    return params


def changed(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(params)
    *path, leaf = key.split(".")
    node = out
    for part in path:
        node = node[part]
    node[leaf] = value
    return out


def test_the_diff_lists_each_differing_leaf_by_dotted_key(paper: dict[str, Any]) -> None:
    new = changed(changed(paper, "train.iterations", 10_000), "prune.rates.fc1", 0.3)
    del new["train"]["patience"]
    new["pipeline"] = {"rounds": {}}  # generated: never listed
    assert params_diff(paper, new) == [
        ParamChange("prune.rates.fc1", 0.2, 0.3),
        ParamChange("train.iterations", 50_000, 10_000),
        ParamChange("train.patience", 10_000, ABSENT),
    ]
    assert params_diff(paper, copy.deepcopy(paper)) == []
    assert [value_text(v) for v in (ABSENT, True, None, [300, 100], 1e-07, "all")] == [
        "–",
        "true",
        "null",
        "[300, 100]",
        "1e-07",
        "all",
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.iterations", 10_000),
        ("train.learning_rate", 0.0024),
        ("train.patience", 0),
        ("train.adam_epsilon", 1e-7),
        ("prune.point", "early_stop"),
        ("prune.rates.fc1", 0.3),
        ("prune.strategy", "oneshot"),
        ("study.seed", 1),
        ("data.validation_size", 10_000),
        ("controls.reinit_repeats", 1),
    ],
)
def test_a_result_affecting_difference_is_warned(
    paper: dict[str, Any], key: str, value: Any
) -> None:
    assert paper_value(paper, key) != value  # a real difference
    warned = protocol_warnings("a", paper, "b", changed(paper, key, value))
    assert [c.key for c in warned] == [key]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("study.name", "another"),
        ("study.rounds", 3),
        ("study.trials", 9),
        ("train.test_every", 777),
        ("controls.rounds", [7, 11]),
        ("report.match_margin_pp", 0.5),
    ],
)
def test_a_difference_that_changes_no_paired_row_is_listed_not_warned(
    paper: dict[str, Any], key: str, value: Any
) -> None:
    new = changed(paper, key, value)
    assert [c.key for c in params_diff(paper, new)] == [key]
    assert protocol_warnings("a", paper, "b", new) == []


def paper_value(params: dict[str, Any], key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("data.dataset", "fashion-mnist", "data.dataset (mnist → fashion-mnist)"),
        ("model.network", "conv2", "model.network (mlp → conv2)"),
        ("model.hidden", [300], "model.hidden ([300, 100] → [300])"),
    ],
)
def test_another_network_or_dataset_is_refused(
    paper: dict[str, Any], key: str, value: Any, shown: str
) -> None:
    with pytest.raises(ProtocolError, match="train different networks or datasets") as err:
        protocol_warnings("a", paper, "b", changed(paper, key, value))
    assert shown in str(err.value) and "Compare two studies of one network" in str(err.value)


def test_an_old_file_without_model_and_dataset_means_lenet_on_mnist(
    paper: dict[str, Any],
) -> None:
    old = copy.deepcopy(paper)
    del old["model"], old["data"]["dataset"]
    assert protocol_warnings("old", old, "new", paper) == []  # listed, not warned or refused
    assert {c.key for c in params_diff(old, paper)} == {
        "data.dataset",
        "model.hidden",
        "model.network",
    }


def test_a_root_without_readable_params_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="no such file"):
        read_params(tmp_path)
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ProtocolError, match="not valid YAML"):
        read_params(tmp_path)
