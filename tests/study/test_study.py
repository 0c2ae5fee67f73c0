"""The stage functions in-process on real MNIST: one-shot, global, rewinding, controls."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lottery.core import lineage, paths
from lottery.core.arch import LAYERS, LENET, kernel_key
from lottery.core.masks import (
    density,
    load_mask,
    load_weights,
    mask_hash,
    ones_mask,
    weights_hash,
)
from lottery.core.pruning import cumulative_rate, prune_magnitude
from lottery.study import common, nets, prepare, train
from tests.helpers import tiny_params

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project directory with data prepared, θ0 drawn and the dense round trained
    with late rewinding to iteration 10 (all in-process, local MLflow store)."""
    root = tmp_path_factory.mktemp("study")
    (root / "data").symlink_to(ROOT / "data")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("MLFLOW_T", "DVC_"))}
    os.environ["DVC_ROOT"] = str(root)  # the MLflow store: as DVC tells a stage its project
    try:
        params = tiny_params(prune={"rewind_iteration": 10})
        prepare.prepare(params, root)
        prepare.init(params, root)
        train.train_stage(params, "ticket", "r00", root)
        yield root
    finally:
        os.environ.pop("DVC_ROOT")
        os.environ.update(saved)


def test_late_rewinding_saves_the_weights_at_iteration_j(project: Path) -> None:
    lay = paths.Layout(project)
    from lottery.data.split import load_split
    from lottery.engine.training import Engine, TrainConfig

    theta0 = load_weights(lay.theta0_path(0), arch=LENET)
    rewind = load_weights(lay.rewind_path(0), arch=LENET)
    info = json.loads(lay.rewind_path(0).with_suffix(".json").read_text())
    assert info["rewind_iteration"] == 10 and info["sha256"] == weights_hash(rewind, arch=LENET)
    assert weights_hash(rewind, arch=LENET) != weights_hash(theta0, arch=LENET)
    # Training the dense net alone for j iterations with the same seed reproduces θ_j.
    params = tiny_params(prune={"rewind_iteration": 10})
    net = nets.stage_nets(lay, params, "ticket", 0)[0]
    engine = Engine(load_split(lay.prepared_dir()), 1, TrainConfig(10, eval_every=10), LENET)
    (res,) = engine.train([net.init], [net.mask], [net.data_seed], progress=lambda s: None)
    for key, value in rewind.items():
        np.testing.assert_allclose(res.weights[key], value, atol=1e-6)
    # Later rounds start from θ_j, not θ0; the tickets' lineage still names θ0.
    ticket = nets.stage_nets(lay, params, "ticket", 1)[0]
    assert weights_hash(ticket.init, arch=LENET) == weights_hash(rewind, arch=LENET)
    assert ticket.source.theta0_sha256 == weights_hash(theta0, arch=LENET)


def test_iterative_prunes_the_survivors_of_the_round(project: Path) -> None:
    lay = paths.Layout(project)
    params = tiny_params()
    rng = np.random.default_rng(1)
    trained = {
        kernel_key(n): rng.normal(size=m.shape).astype(np.float32)
        for n, m in ones_mask(LENET).items()
    }
    mask = load_mask(lay.round_mask_path(1, 0), arch=LENET)
    got = nets.next_mask(lay, params, 1, trained, mask, 0)
    want = prune_magnitude(
        {n: trained[kernel_key(n)] for n in LAYERS}, mask, params.prune.rates, arch=LENET
    )
    assert all(np.array_equal(got[n], want[n]) for n in LAYERS)
    assert all((got[n] <= mask[n]).all() for n in LAYERS)


def test_oneshot_prunes_the_dense_network_straight_to_round_k(project: Path) -> None:
    lay = paths.Layout(project)
    params = tiny_params(prune={"strategy": "oneshot"})
    dense = load_weights(lay.dense_trained_path(0), arch=LENET)
    rng = np.random.default_rng(2)
    unrelated = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in dense.items()}
    got = nets.next_mask(
        lay, params, 2, unrelated, load_mask(lay.round_mask_path(1, 0), arch=LENET), 0
    )
    rates = {n: cumulative_rate(r, 3) for n, r in params.prune.rates.items()}
    want = prune_magnitude(
        {n: dense[kernel_key(n)] for n in LAYERS}, ones_mask(LENET), rates, arch=LENET
    )
    assert all(np.array_equal(got[n], want[n]) for n in LAYERS)
    assert abs(density(got, arch=LENET)["fc1"] - 0.512) < 1e-5


def test_global_scope_pools_layers_and_keeps_excluded_rates(project: Path) -> None:
    lay = paths.Layout(project)
    params = tiny_params(prune={"scope": "global", "global_rate": 0.3, "global_exclude": ["out"]})
    trained = load_weights(lay.dense_trained_path(0), arch=LENET)
    got = nets.next_mask(lay, params, 0, trained, ones_mask(LENET), 0)
    pooled = sum(got[n].sum() for n in ("fc1", "fc2"))
    assert pooled == round(0.7 * (784 * 300 + 300 * 100))
    assert got["out"].sum() == 1000 - 100  # out keeps its own layer-wise rate, 0.1
    # Globally: every pruned pooled weight is no larger than every kept one.
    mags = {n: np.abs(trained[kernel_key(n)]) for n in ("fc1", "fc2")}
    pruned_max = max(mags[n][~got[n]].max() for n in mags)
    kept_min = min(mags[n][got[n]].min() for n in mags)
    assert pruned_max <= kept_min


def test_controls_use_the_rounds_mask_density_and_their_own_inits(project: Path) -> None:
    lay = paths.Layout(project)
    params = tiny_params(controls={"reinit_repeats": 3})
    ticket_mask = load_mask(lay.round_mask_path(1, 0), arch=LENET)
    rand = nets.stage_nets(lay, params, "random", 1)
    for net in rand:
        m = load_mask(lay.round_mask_path(1, net.trial), arch=LENET)
        assert {n: int(net.mask[n].sum()) for n in LAYERS} == {n: int(m[n].sum()) for n in LAYERS}
        assert not np.array_equal(net.mask["fc1"], m["fc1"])
    reinit = nets.stage_nets(lay, params, "reinit", 1)
    assert [n.run_key for n in reinit] == [
        "t0-rep0",
        "t0-rep1",
        "t0-rep2",
        "t1-rep0",
        "t1-rep1",
        "t1-rep2",
    ]
    assert len({weights_hash(n.init, arch=LENET) for n in reinit}) == 6
    assert all(
        np.array_equal(n.mask["fc1"], load_mask(lay.round_mask_path(1, n.trial), arch=LENET)["fc1"])
        for n in reinit
    )
    # Random masks are reproducible from the seed.
    again = nets.stage_nets(lay, params, "random", 1)
    assert all(
        np.array_equal(a.mask["fc1"], b.mask["fc1"]) for a, b in zip(rand, again, strict=True)
    )
    assert ticket_mask["fc1"].sum() == rand[0].mask["fc1"].sum()


def test_mlflow_run_records_the_options(project: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test-study")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], "tags.`lottery.dvc_stage` = 'dense'")
    assert len(runs) == 2
    for r in runs:
        assert r.data.tags["lottery.rewind_iteration"] == "10"
        assert r.data.tags["lottery.strategy"] == "iterative"
        assert r.data.tags["lottery.scope"] == "layerwise"
        assert r.info.status == "FINISHED"


def test_a_stage_with_patience_records_where_and_why_each_run_stopped(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Patience through the real stage function: each run's stop iteration and rule in
    the metrics file and in MLflow; runs stopped by patience trained fewer iterations."""
    import shutil

    from mlflow import MlflowClient

    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    monkeypatch.setenv("DVC_ROOT", str(copy))
    lay = paths.Layout(copy)
    params = tiny_params(
        train={
            "iterations": 400,
            "eval_every": 10,
            "test_every": 100,
            "patience": 40,
            "learning_rate": 0.01,
        },
        prune={"rewind_iteration": 10},
        controls={"reinit_repeats": 2},
    )
    metrics = train.train_stage(params, "reinit", "r01", copy)
    assert (metrics["patience"], metrics["iterations"], metrics["eval_every"]) == (40, 400, 10)
    runs = metrics["runs"].values()
    assert {r["stop_reason"] for r in runs} <= {"patience", "horizon"}
    stopped = [r for r in runs if r["stop_reason"] == "patience"]
    assert stopped, [r["stop_iteration"] for r in runs]  # the high rate makes some stop
    for r in runs:
        if r["stop_reason"] == "patience":
            assert r["stop_iteration"] == r["early_stop_iteration"] + 40 < 400
        else:
            assert r["stop_iteration"] == 400
    curves = json.loads(lay.curves_path("reinit", "r01").read_text())["runs"]
    for key, r in metrics["runs"].items():
        assert curves[key]["iteration"][-1] == r["stop_iteration"]
        assert curves[key]["test_iteration"][-1] == r["stop_iteration"]
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test-study")
    assert exp is not None
    found = client.search_runs([exp.experiment_id], "tags.`lottery.dvc_stage` = 'reinit@r01'")
    by_key = {
        r.info.run_name.rsplit("-", 2)[-2] + "-" + r.info.run_name.rsplit("-", 1)[-1]: r
        for r in found
    }
    assert len(found) == len(metrics["runs"])
    for key, r in metrics["runs"].items():
        run = by_key[key]
        assert run.data.tags["lottery.stop_reason"] == r["stop_reason"]
        assert run.data.metrics["stop_iteration"] == r["stop_iteration"]


def test_a_fashion_mnist_study_prepares_its_own_split_and_trains(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(ROOT / "data")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("MLFLOW_T", "DVC_"))}
    os.environ["DVC_ROOT"] = str(tmp_path)
    try:
        params = tiny_params(
            data={"dataset": "fashion-mnist"}, study={"trials": 1}, train={"iterations": 20}
        )
        manifest = prepare.prepare(params, tmp_path)
        prepare.init(params, tmp_path)
        out = train.train_stage(params, "ticket", "r00", tmp_path)
    finally:
        os.environ.pop("DVC_ROOT")
        os.environ.update(saved)
    assert manifest["dataset"] == "fashion-mnist"
    sums = (ROOT / "data" / "fashion-mnist" / "SHA256SUMS").read_text()
    digests = [entry["sha256"] for entry in manifest["source"].values()]
    assert len(digests) == 4 and all(d in sums for d in digests), manifest["source"]
    mnist = (ROOT / "data" / "mnist" / "SHA256SUMS").read_text()
    assert not any(d in mnist for d in digests)
    metrics = json.loads((tmp_path / paths.metrics_path("ticket", "r00")).read_text())
    assert 0.0 < metrics["runs"]["t0"]["test_accuracy_at_stop"] <= 1.0, out


@pytest.mark.parametrize(
    ("dataset", "model"),
    [
        ("mnist", {"network": "conv2", "hidden": []}),
        ("fashion-mnist", {"network": "mlp", "hidden": [200]}),
    ],
)
def test_init_draws_theta0_and_m0_of_the_chosen_network(
    tmp_path: Path, dataset: str, model: dict[str, object]
) -> None:
    """Any network of params.yaml gets its own θ0 (the library's Glorot draw for its
    architecture) and an all-ones m_0 with its layers' shapes, lineage included."""
    from lottery.core.arch import glorot_normal_init

    rates = {"conv": 0.1, "fc": 0.2} if model["network"] == "conv2" else {"fc": 0.2}
    params = tiny_params(
        data={"dataset": dataset}, model=model, prune={"rates": {**rates, "out": 0.1}}
    )
    net = params.architecture()
    assert net != LENET
    prepare.init(params, tmp_path)
    lay = paths.Layout(tmp_path)
    for t in range(params.study.trials):
        theta0 = load_weights(lay.theta0_path(t), arch=net)
        want = glorot_normal_init(common.rng_for(params.study.seed, "theta0", t), net)
        assert all(np.array_equal(theta0[k], want[k]) for k in net.weight_shapes())
        m0 = load_mask(lay.initial_mask_path(t), arch=net)
        assert {n: m.shape for n, m in m0.items()} == net.kernel_shapes
        assert all(m.all() for m in m0.values())
        record = lineage.read(lay.initial_mask_path(t))
        assert record.sha256 == mask_hash(m0, arch=net)
        assert record.kept["overall"] == net.n_prunable
        assert record.theta0_sha256 == weights_hash(theta0, arch=net)
