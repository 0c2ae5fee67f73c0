"""The audit's pruning-point check on hand-made lineage, params and metrics: a ticket's
pruned mask records the weights it was cut from (`pruned_from`), which must be the
point params.yaml's `prune.point` names, at the iteration that point implies (the
horizon, or the run's early stop in metrics/ticket/rNN.json), as the run's MLflow tags
say too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from lottery.audit.links import Link
from lottery.audit.places import expected_for
from lottery.audit.study import check_pruned_from
from lottery.core.params import Params, load_params
from tests.conftest import ROOT, write_params

M1 = "artifacts/ticket/r00/t1/next_mask.npz"  # m_1 of trial 1, pruned by the dense stage
M3 = "artifacts/ticket/r02/t1/next_mask.npz"  # m_3 of trial 1, pruned by ticket@r02
SIDE = M3.replace(".npz", ".json")


def params_with(tmp_path: Path, point: str) -> Params:
    (tmp_path / "params.yaml").parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    write_params(tmp_path, {"prune": {"point": point}, "train": {"iterations": 3000}})
    return load_params(tmp_path / "params.yaml")


def metrics(root: Path, name: str, runs: dict[str, Any]) -> None:
    path = root / "metrics" / "ticket" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}))


def check(
    rel: str, lineage: dict[str, Any], params: Params, root: Path, run: Any = None
) -> list[str]:
    exp = expected_for(rel)
    link = Link(rel, "mask", "m", 1, stage=exp.stage if exp else None, condition="ticket")
    check_pruned_from(link, lineage, exp, run, params, root, rel.replace(".npz", ".json"))
    return [f"[{p.check}] {p.message}" for p in link.problems]


@pytest.fixture
def horizon(tmp_path: Path) -> Params:
    return params_with(tmp_path / "horizon", "horizon")


@pytest.fixture
def early(tmp_path: Path) -> Params:
    return params_with(tmp_path / "early", "early_stop")


def test_horizon_is_train_iterations(horizon: Params, tmp_path: Path) -> None:
    assert (
        check(M3, {"pruned_from": {"point": "horizon", "iteration": 3000}}, horizon, tmp_path) == []
    )
    (found,) = check(
        M3, {"pruned_from": {"point": "horizon", "iteration": 2000}}, horizon, tmp_path
    )
    assert f"[lineage] {SIDE} records pruning at iteration 2000 (horizon), but " in found
    assert "train.iterations is 3000" in found and "`dvc repro -f -s ticket@r02`" in found


def test_the_point_is_params_prune_point(horizon: Params, early: Params, tmp_path: Path) -> None:
    (found,) = check(
        M3, {"pruned_from": {"point": "early_stop", "iteration": 900}}, horizon, tmp_path
    )
    assert "records pruned_from point 'early_stop', params.yaml has prune.point 'horizon'" in found
    (found,) = check(M1, {"pruned_from": {"point": "horizon", "iteration": 3000}}, early, tmp_path)
    assert "point 'horizon', params.yaml has prune.point 'early_stop'" in found
    assert "`dvc repro -f -s dense`" in found


def test_early_stop_is_the_runs_early_stop_iteration(early: Params, tmp_path: Path) -> None:
    lineage = {"pruned_from": {"point": "early_stop", "iteration": 900}}
    (missing,) = check(M3, lineage, early, tmp_path)
    assert "cannot check" in missing and "metrics/ticket/r02.json cannot be read" in missing
    metrics(tmp_path, "r02", {"t0": {"early_stop_iteration": 900}})
    (no_key,) = check(M3, lineage, early, tmp_path)
    assert "metrics/ticket/r02.json has no runs.t1.early_stop_iteration" in no_key
    metrics(
        tmp_path, "r02", {"t1": {"early_stop_iteration": 900}, "t0": {"early_stop_iteration": 5}}
    )
    assert check(M3, lineage, early, tmp_path) == []
    metrics(tmp_path, "r02", {"t1": {"early_stop_iteration": 1200}})
    (found,) = check(M3, lineage, early, tmp_path)
    assert "records pruning at iteration 900 (early_stop), but metrics/ticket/r02.json" in found
    assert "records early-stop iteration 1200 for t1" in found
    metrics(tmp_path, "r00", {"t1": {"early_stop_iteration": 1200}})  # the dense stage's
    assert (
        check(M1, {"pruned_from": {"point": "early_stop", "iteration": 1200}}, early, tmp_path)
        == []
    )


def test_a_mask_made_before_the_point_was_recorded(horizon: Params, tmp_path: Path) -> None:
    (found,) = check(M3, {"sha256": "ab" * 32}, horizon, tmp_path)
    assert found.startswith(f"[lineage] {SIDE} records no pruned_from")
    assert "made before the pruning point was recorded; rerun with `dvc repro -f`" in found
    for bad in ({"point": "horizon"}, {"point": "middle", "iteration": 3000}, "horizon"):
        (found,) = check(M3, {"pruned_from": bad}, horizon, tmp_path)
        assert "not {point: horizon | early_stop, iteration: N}" in found


def test_only_pruned_ticket_masks_record_it(horizon: Params, tmp_path: Path) -> None:
    """m_0 and the controls' masks are not cut from trained weights."""
    for rel in (
        "artifacts/init/t0/mask.npz",
        "artifacts/reinit/r01/t0-rep0/mask.npz",
        "artifacts/random/r02/t1/mask.npz",
    ):
        assert check(rel, {}, horizon, tmp_path) == [], rel


def test_the_runs_tags_say_the_same(horizon: Params, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("pruned", artifact_location=(tmp_path / "mlruns").as_uri())
    lineage = {"pruned_from": {"point": "horizon", "iteration": 3000}}

    def run_with(**tags: str) -> Any:
        run_id = client.create_run(exp, tags={f"lottery.{k}": v for k, v in tags.items()})
        return client.get_run(run_id.info.run_id)

    agree = run_with(pruned_from_point="horizon", pruned_from_iteration="3000")
    assert check(M3, lineage, horizon, tmp_path, agree) == []
    other = run_with(pruned_from_point="horizon", pruned_from_iteration="2999")
    (found,) = check(M3, lineage, horizon, tmp_path, other)
    assert f"[mlflow] MLflow run {other.info.run_id} has tag lottery.pruned_from_iteration" in found
    assert "='2999', its lineage" in found and "says '3000'" in found
    untagged = run_with()
    assert len(check(M3, lineage, horizon, tmp_path, untagged)) == 2
