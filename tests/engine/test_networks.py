"""Networks other than LeNet-300-100 through the pipeline's stages, on tiny real data.

In-process: Conv-2 on a tiny CIFAR-10 written in the official binary format, and an mlp
with hidden widths [64, 32] on Fashion-MNIST, through every stage; every dataset with every
network through its dense round. Then one real `dvc repro` of Conv-2 on (the first images
of) Fashion-MNIST in a temporary git repository, audited clean.
Each checks the masks' shapes per layer, that every ticket round prunes each layer at its
type's rate, that pruned weights stay exactly zero in the trained weights, and the figures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lottery.core import datasets, paths
from lottery.core.arch import Architecture, kernel_key
from lottery.core.datasets import DataError
from lottery.core.masks import Mask, load_mask, load_weights
from lottery.core.params import Params, load_params
from lottery.core.pruning import prune_count
from lottery.data import checksums, idx
from lottery.report import canvas
from lottery.study import prepare, train, visualise
from tests.conftest import make_project, ran_stages, run
from tests.helpers import (
    assert_png,
    audit,
    stage_env,
    tiny_cifar,
    tiny_params,
    write_cifar_dir,
    write_idx,
)

ROOT = Path(__file__).resolve().parents[2]
CONV_RATES = {"conv": 0.1, "fc": 0.2, "out": 0.1}  # the paper's Conv-2 rates, per layer type
MLP_RATES = {"fc": 0.2, "out": 0.1}
#: A few iterations, every one of them evaluated; small batches.
SHORT: dict[str, object] = {"iterations": 4, "eval_every": 2, "test_every": 4, "batch_size": 10}


def assert_round_pruned_at_rates(
    lay: paths.Layout, net: Architecture, rates: dict[str, float], rnd: int, trial: int = 0
) -> Mask:
    """m_{k+1} of ticket round k: each layer of `net`'s shape, the survivors of m_k less
    `prune_count(rate of its type)`; the trained weights are exactly zero where m_k prunes
    and trained where it keeps. Returns m_{k+1}."""
    mask = load_mask(lay.round_mask_path(rnd, trial), arch=net)
    nxt = load_mask(lay.round_mask_path(rnd + 1, trial), arch=net)
    name = paths.round_name(rnd)
    trained = load_weights(lay.trained_path("ticket", name, paths.run_key(trial)), arch=net)
    start = load_weights(lay.theta0_path(trial), arch=net)
    for layer in net.layers:
        m, n = mask[layer.name], nxt[layer.name]
        assert m.shape == n.shape == layer.kernel_shape
        kept = int(m.sum())
        assert int(n.sum()) == kept - prune_count(rates[layer.type], kept), (rnd, layer.name)
        assert not (n & ~m).any()  # nothing pruned comes back
        kernel = trained[kernel_key(layer.name)]
        assert not kernel[~m].any(), (rnd, layer.name)  # pruned weights exactly zero
        assert (kernel[m] != start[kernel_key(layer.name)][m]).any()  # the rest trained
    return nxt


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the in-process studies (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def run_in_process(params: Params, root: Path, store: str) -> dict[str, Path]:
    """prepare, init, every training stage of `params` and visualise, in-process."""
    with pytest.MonkeyPatch.context() as mp:
        stage_env(mp, root, MLFLOW_TRACKING_URI=store)
        prepare.prepare(params, root)
        prepare.init(params, root)
        for name in visualise.round_names(params):
            train.train_stage(params, "ticket", name, root)
        for name in params.pipeline.reinit_rounds:
            train.train_stage(params, "reinit", name, root)
        for name in params.pipeline.random_rounds:
            train.train_stage(params, "random", name, root)
        return visualise.visualise(params, root)


def mask_figure_names(figures: Any) -> set[str]:
    return {str(name) for name in figures if str(name).startswith("masks/")}


def test_conv2_on_a_tiny_cifar10_trains_prunes_and_draws_each_conv_layer(
    tmp_path: Path, store: str
) -> None:
    write_cifar_dir(tmp_path / "data" / "cifar10", tiny_cifar(per_file=12, n_test=10))
    params = tiny_params(
        study={"trials": 1, "rounds": 1},
        data={"dataset": "cifar10", "validation_size": 10},
        model={"network": "conv2", "hidden": []},
        prune={"rates": CONV_RATES},
        train=SHORT,
        controls={"reinit": False, "random": True},
    )
    net = params.architecture()
    assert net.names == ("conv1", "conv2", "fc1", "fc2", "out")
    assert net.kernel_shapes["conv1"] == (3, 3, 3, 64)
    figures = run_in_process(params, tmp_path, store)
    lay = paths.Layout(tmp_path)
    m1 = assert_round_pruned_at_rates(lay, net, CONV_RATES, 0)
    assert_round_pruned_at_rates(lay, net, CONV_RATES, 1)
    # The random control: m_1's count per layer, drawn anew, in the conv shapes.
    rmask = load_mask(lay.control_mask_path("random", "r01", "t0"), arch=net)
    assert {n: int(m.sum()) for n, m in rmask.items()} == {n: int(m.sum()) for n, m in m1.items()}
    assert not np.array_equal(rmask["conv2"], m1["conv2"])
    metrics = json.loads(lay.metrics_path("ticket", "r01").read_text())
    assert metrics["density"]["conv1"] == int(m1["conv1"].sum()) / m1["conv1"].size
    kept = sum(int(m.sum()) for m in m1.values())
    assert abs(metrics["percent_remaining"] - 100 * kept / net.n_prunable) < 1e-9
    # Figures: each conv layer's map per round; no pixel map for a conv first layer.
    want = {paths.layer_mask_figure_name(k, c) for k in range(2) for c in ("conv1", "conv2")}
    assert mask_figure_names(figures) == want
    for name in want:
        assert_png(figures[name], canvas.CONV_FIGSIZE)


def test_an_mlp_64_32_on_fashion_mnist_trains_prunes_and_draws_its_first_layer(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").symlink_to(ROOT / "data")
    params = tiny_params(
        study={"trials": 1, "rounds": 1},
        data={"dataset": "fashion-mnist", "validation_size": 100},
        model={"network": "mlp", "hidden": [64, 32]},
        prune={"rates": MLP_RATES},
        train=SHORT,
        controls={"reinit": False, "random": False},
    )
    net = params.architecture()
    assert net.kernel_shapes == {"fc1": (784, 64), "fc2": (64, 32), "out": (32, 10)}
    figures = run_in_process(params, tmp_path, store)
    lay = paths.Layout(tmp_path)
    assert_round_pruned_at_rates(lay, net, MLP_RATES, 0)
    assert_round_pruned_at_rates(lay, net, MLP_RATES, 1)
    # 784 inputs of a one-channel image: the fc1 mask and the pixel map, every round.
    assert mask_figure_names(figures) == {n for k in range(2) for n in paths.mask_figure_names(k)}
    fc1_mask, pixel_map = paths.mask_figure_names(1)
    assert_png(figures[fc1_mask], canvas.MASK_FIGSIZE)
    assert_png(figures[pixel_map], canvas.PIXEL_FIGSIZE)
    # A network for other images is refused on this split before anything trains.
    conv = tiny_params(
        data={"dataset": "cifar10"},
        model={"network": "conv2", "hidden": []},
        prune={"rates": CONV_RATES},
    )
    stage_env(monkeypatch, tmp_path, MLFLOW_TRACKING_URI=store)
    with pytest.raises(DataError, match="28x28x1 images, conv2 on 32x32x3"):
        train.train_stage(conv, "ticket", "r00", tmp_path)


def small_idx_dataset(
    dest: Path, n_train: int = 600, n_test: int = 100, dataset: str = "fashion-mnist"
) -> Path:
    """The first images of a committed IDX dataset (Fashion-MNIST unless told), in its own
    files and SHA256SUMS (the full 10,000-image test set costs a Conv-2 ~10 s per
    evaluation here)."""
    src = ROOT / "data" / dataset
    dest.mkdir(parents=True)
    lines = []
    for role, name in idx.MNIST_FILES.items():
        images = role.endswith("images")
        arr = idx.read_idx(src / name, "images" if images else "labels")
        arr = arr[: n_train if role.startswith("train") else n_test]
        write_idx(dest / name, 0x803 if images else 0x801, arr.shape, arr.tobytes())
        lines.append(f"{hashlib.sha256((dest / name).read_bytes()).hexdigest()}  {name}\n")
    (dest / checksums.CHECKSUMS_FILE).write_text("".join(lines))
    return dest


def test_dvc_repro_trains_conv2_on_fashion_mnist_and_audits_clean(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "conv2",
        {
            "study": {"trials": 1, "rounds": 1},
            "data": {"dataset": "fashion-mnist", "validation_size": 100},
            "model": {"network": "conv2", "hidden": []},
            "train": SHORT,
            "prune": {"rates": CONV_RATES},
            "controls": {"reinit": True, "random": True},
        },
    )
    small_idx_dataset(project / "data" / "fashion-mnist")
    proc = run(project, "dvc", "repro")
    controls = ["reinit@r01", "random@r01"]
    assert sorted(ran_stages(proc.stdout)) == sorted(
        ["prepare", "init", "dense", "ticket@r01", *controls, "visualise", "report"]
    )
    params = load_params(project / "params.yaml")
    net = params.architecture()
    assert net.describe() == "conv2 on 28x28x1"
    lay = paths.Layout(project)
    for rnd in range(2):
        assert_round_pruned_at_rates(lay, net, CONV_RATES, rnd)
    code, result = audit(project)
    assert code == 0, result["problems"]
    assert len(result["targets"]) == 1 + 2 + 2  # m_0, m_1, m_2, one mask per control
    figures = lay.figures_dir() / "masks"
    assert sorted(p.name for p in figures.iterdir()) == sorted(
        f"{paths.round_name(k)}_{c}_mask.png" for k in range(2) for c in ("conv1", "conv2")
    )
    assert_png(figures / "r01_conv2_mask.png", canvas.CONV_FIGSIZE)
    assert "conv2 mask, fraction of each kernel kept" in lay.report_path().read_text()


#: Every dataset with every network, each in its own small real data.
COMBINATIONS = [(d, n) for d in datasets.DATASETS for n in ("mlp", "conv2", "conv4", "conv6")]


def small_dataset(root: Path, dataset: str) -> int:
    """A small copy of `dataset` under root/data; returns a validation size that fits it."""
    if dataset == "cifar10":
        write_cifar_dir(root / "data" / "cifar10", tiny_cifar(per_file=12, n_test=10))
        return 10
    small_idx_dataset(root / "data" / dataset, n_train=200, n_test=20, dataset=dataset)
    return 50


@pytest.mark.parametrize(("dataset", "network"), COMBINATIONS)
def test_every_dataset_with_every_network_trains_and_prunes_at_its_rates(
    tmp_path: Path, store: str, dataset: str, network: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare, init and the dense round in-process: θ0 and m_0 of the network for that
    dataset's images, trained with pruned weights exactly zero, m_1 at each type's rate.
    (Conv-2 on Fashion-MNIST runs the whole pipeline through `dvc repro` below.)"""
    rates = MLP_RATES if network == "mlp" else CONV_RATES
    params = tiny_params(
        study={"trials": 1, "rounds": 1},
        data={"dataset": dataset, "validation_size": small_dataset(tmp_path, dataset)},
        model={"network": network, "hidden": [16, 8] if network == "mlp" else []},
        prune={"rates": rates},
        train={**SHORT, "iterations": 2, "eval_every": 2, "test_every": 2},
        controls={"reinit": False, "random": False},
    )
    net = params.architecture()
    assert net.input_shape == ((32, 32, 3) if dataset == "cifar10" else (28, 28, 1))
    stage_env(monkeypatch, tmp_path, MLFLOW_TRACKING_URI=store)
    prepare.prepare(params, tmp_path)
    prepare.init(params, tmp_path)
    metrics = train.train_stage(params, "ticket", "r00", tmp_path)
    assert_round_pruned_at_rates(paths.Layout(tmp_path), net, rates, 0)
    assert metrics["runs"]["t0"]["stop_iteration"] == 2
