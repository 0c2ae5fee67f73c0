"""The study check's params half on a real MLflow run (the pruning point's half is
tests/audit/test_pruned.py): a link made with other params than params.yaml is named by
each param its stage depends on that the run logged otherwise; values compare as values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from lottery.audit.links import Link
from lottery.audit.study import check_params, flat_params, same_value
from lottery.core.params import Params, load_params
from tests.conftest import ROOT

KEYS = ["train.learning_rate", "train.iterations"]  # what dvc.lock says the stage depends on


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def logged(tmp_path: Path) -> Any:
    """A run that logged params.yaml's params, but another learning rate spelled otherwise
    (`1.2e-3`) and another number of iterations."""
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("study", artifact_location=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(exp).info.run_id
    client.log_param(run_id, "train.learning_rate", "1.2e-3")
    client.log_param(run_id, "train.iterations", "50000")
    client.log_param(run_id, "train.batch_size", "30")
    return client.get_run(run_id)


def check(params: Params, run: Any, study_hash: str, keys: list[str] | None = KEYS) -> list[str]:
    link = Link("artifacts/ticket/r00/t0/next_mask.npz", "mask", "m_1", 0, stage="dense")
    check_params(link, {"study_hash": study_hash}, run, keys, params, flat_params(params))
    return [f"[{p.check}] {p.message}" for p in link.problems]


def test_another_value_of_a_key_the_stage_depends_on_is_named(params: Params, logged: Any) -> None:
    (found,) = check(params, logged, "another study")
    assert found.startswith(
        f"[params] made with other params than params.yaml: MLflow run {logged.info.run_id} of "
        f"stage dense logged train.iterations 50000 (params.yaml: {params.train.iterations})"
    )
    assert "learning_rate" not in found  # 1.2e-3 is params.yaml's 0.0012
    assert "batch_size" not in found  # the stage does not depend on it
    assert "`dvc repro -f -s dense` recomputes them" in found


def test_nothing_to_compare_is_no_problem(params: Params, logged: Any) -> None:
    assert check(params, logged, params.study_hash()) == []  # the params at hand made it
    assert check(params, None, "another study") == []  # a missing run is named elsewhere
    assert check(params, logged, "another study", keys=None) == []  # so is a missing dvc.lock
    assert check(params, logged, "another study", keys=["train.learning_rate"]) == []


def test_values_compare_as_values() -> None:
    assert same_value("0.0012", "1.2e-3") and same_value("[300, 100]", "(300, 100)")
    assert same_value("mnist", "mnist") and not same_value("mnist", "cifar10")
    assert not same_value("0.0012", "0.002")
