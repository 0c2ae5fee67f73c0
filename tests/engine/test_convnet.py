"""K convolutional networks trained side by side (lottery.convnet): a network's trajectory
does not depend on its neighbours, pruned weights stay exactly zero, the forward pass is
the textbook one, load/export round-trip, bad masks are refused; the engine trains a tiny
Conv-2 stack on real MNIST."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lottery.core import arch
from lottery.core.arch import Architecture, kernel_key
from lottery.core.masks import Mask, MaskError, Weights
from lottery.data.prepare import prepare
from lottery.data.split import Split, load_split
from lottery.engine import conv as convnet
from lottery.engine.conv import StackedConvNet, glorot_normal_init
from lottery.engine.mlp import Adam, tf
from lottery.engine.training import Engine, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
MNIST_CONV2 = arch.build("conv2", (28, 28, 1))
CIFAR_CONV2 = arch.build("conv2", (32, 32, 3))


def random_mask(net: Architecture, seed: int, density: float = 0.5) -> Mask:
    rng = np.random.default_rng(seed)
    return {name: rng.random(shape) < density for name, shape in net.kernel_shapes.items()}


def network(net: Architecture, i: int) -> tuple[Weights, Mask, np.ndarray, np.ndarray]:
    """Network i's θ0, mask and training batches (3 steps of 4 images), all from seed i."""
    rng = np.random.default_rng([40, i])
    x = rng.random((3, 4, net.n_inputs)).astype(np.float32)
    return glorot_normal_init(rng, net), random_mask(net, 50 + i), x, rng.integers(0, 10, (3, 4))


def train_stack(
    net: Architecture, ids: Sequence[int], x_eval: np.ndarray
) -> tuple[StackedConvNet, list[Weights], np.ndarray]:
    """Networks `ids` trained together (Adam, the steps in one compiled loop as the engine
    runs them); their exported weights and logits on the shared batch `x_eval`."""
    nets = [network(net, i) for i in ids]
    stack = StackedConvNet(len(ids), net)
    stack.load([n[0] for n in nets], [n[1] for n in nets])
    adam = Adam(stack.trainable, learning_rate=1e-2)
    xs = tf.constant(np.stack([n[2] for n in nets], axis=1))  # (steps, K, B, pixels)
    ys = tf.constant(np.stack([n[3] for n in nets], axis=1).astype(np.int32))

    @tf.function(jit_compile=convnet.XLA)  # as the engine compiles it
    def steps() -> None:
        for i in tf.range(tf.shape(xs)[0]):
            with tf.GradientTape() as tape:
                losses = tf.nn.sparse_softmax_cross_entropy_with_logits(ys[i], stack(xs[i]))
                loss = tf.reduce_sum(tf.reduce_mean(losses, axis=1))
            adam.apply(tape.gradient(loss, stack.trainable))

    steps()
    logits = tf.function(stack.logits_each, jit_compile=convnet.XLA)(tf.constant(x_eval))
    return stack, stack.export(), logits.numpy()


CASES = [
    pytest.param(MNIST_CONV2, id="conv2-28x28x1"),
    pytest.param(arch.build("conv6", (28, 28, 1)), id="conv6-28x28x1"),
    pytest.param(CIFAR_CONV2, id="conv2-32x32x3"),
]


@pytest.mark.parametrize("net", CASES)
def test_trajectory_is_the_same_whatever_else_is_in_the_stack(net: Architecture) -> None:
    """Network 0 trained beside network 1, beside networks 2 and 3, and beside 4, 5 and 6:
    the same weights and evaluation logits bit for bit."""
    x_eval = np.random.default_rng(7).random((5, net.n_inputs)).astype(np.float32)
    runs = [train_stack(net, ids, x_eval) for ids in ([0, 1], [0, 2, 3], [0, 4, 5, 6])]
    _, ref_weights, ref_logits = runs[0]
    for _, weights, logits in runs[1:]:
        for key, value in ref_weights[0].items():
            assert np.array_equal(weights[0][key], value), key
        assert np.array_equal(logits[0], ref_logits[0])
        # The neighbours are really different networks with different numbers.
        assert not np.array_equal(weights[1]["conv1/kernel"], ref_weights[0]["conv1/kernel"])
        assert not np.array_equal(logits[1], logits[0])
    # Training moved every layer.
    start = network(net, 0)[0]
    for key in start:
        assert not np.array_equal(ref_weights[0][key], start[key]), key


def test_pruned_weights_stay_exactly_zero() -> None:
    x_eval = np.zeros((1, MNIST_CONV2.n_inputs), dtype=np.float32)
    stack, weights, _ = train_stack(MNIST_CONV2, [0, 1], x_eval)
    for layer in stack.layers:
        raw = layer.kernel.numpy()  # the trained variable itself, not the masked export
        for k in range(2):
            mask = network(MNIST_CONV2, k)[1][layer.spec.name]
            assert 0.4 < mask.mean() < 0.6
            assert not raw[k][~mask].any(), layer.spec.name  # Adam never moved them
            kept = weights[k][kernel_key(layer.spec.name)][mask]
            start = network(MNIST_CONV2, k)[0][kernel_key(layer.spec.name)][mask]
            assert np.count_nonzero(kept != start) > 0.25 * kept.size, layer.spec.name


def forward_numpy(weights: Weights, mask: Mask, net: Architecture, x: np.ndarray) -> np.ndarray:
    """The textbook forward pass in float64: 3×3 "same" convolutions + ReLU, 2×2 max-pools,
    flatten in HWC order, dense layers."""
    h = x.astype(np.float64).reshape(-1, *net.input_shape)
    for layer in net.layers:
        w = weights[kernel_key(layer.name)] * mask[layer.name]
        b = weights[f"{layer.name}/bias"]
        if layer.kind == "conv":
            pad = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
            rows, cols = h.shape[1:3]
            h = sum(
                pad[:, dy : dy + rows, dx : dx + cols, :] @ w[dy, dx]
                for dy in range(3)
                for dx in range(3)
            )
            h = np.maximum(h + b, 0)
            if layer.pool_after:
                n, r, c, ch = h.shape
                h = h[:, : r // 2 * 2, : c // 2 * 2].reshape(n, r // 2, 2, c // 2, 2, ch)
                h = h.max(axis=(2, 4))
            continue
        h = h.reshape(h.shape[0], -1) @ w + b
        if layer.name != "out":
            h = np.maximum(h, 0)
    return h


@pytest.mark.parametrize(
    "net", [arch.build("conv4", (28, 28, 1)), CIFAR_CONV2], ids=Architecture.describe
)
def test_forward_pass_is_the_textbook_one(net: Architecture) -> None:
    rng = np.random.default_rng(3)
    inits = [glorot_normal_init(np.random.default_rng([1, k]), net) for k in range(2)]
    for w in inits:  # non-zero biases, so that their broadcast is checked too
        for key in w:
            if key.endswith("/bias"):
                w[key] = rng.normal(0, 0.1, w[key].shape).astype(np.float32)
    masks = [random_mask(net, k) for k in range(2)]
    stack = StackedConvNet(2, net)
    stack.load(inits, masks)
    x = rng.random((2, 3, net.n_inputs)).astype(np.float32)
    train_logits = stack(tf.constant(x)).numpy()
    shared = stack.logits_each(tf.constant(x[0])).numpy()
    assert train_logits.shape == shared.shape == (2, 3, 10)
    for k in range(2):
        want = forward_numpy(inits[k], masks[k], net, x[k])
        np.testing.assert_allclose(train_logits[k], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            shared[k], forward_numpy(inits[k], masks[k], net, x[0]), rtol=1e-4, atol=1e-4
        )


def test_evaluation_in_chunks_pads_the_last_one(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = StackedConvNet(2, MNIST_CONV2)
    stack.load(
        [glorot_normal_init(np.random.default_rng(k), MNIST_CONV2) for k in range(2)],
        [random_mask(MNIST_CONV2, k) for k in range(2)],
    )
    x = tf.constant(np.random.default_rng(4).random((7, 784)).astype(np.float32))
    whole = stack.logits_each(x).numpy()
    monkeypatch.setattr(convnet, "EVAL_ROWS", 3)  # chunks of 3, 3 and 1 (+2 zero rows)
    chunked = stack.logits_each(x).numpy()
    assert chunked.shape == (2, 7, 10)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_load_then_export_round_trips() -> None:
    net = CIFAR_CONV2
    inits = [glorot_normal_init(np.random.default_rng([2, k]), net) for k in range(3)]
    masks = [random_mask(net, 10 + k, density=0.3) for k in range(3)]
    stack = StackedConvNet(3, net)
    stack.load(inits, masks)
    out = stack.export()
    for k in range(3):
        assert list(out[k]) == list(net.weight_shapes())
        for key, value in inits[k].items():
            name = key.split("/")[0]
            want = value * masks[k][name] if key.endswith("/kernel") else value
            assert out[k][key].dtype == np.float32
            assert np.array_equal(out[k][key], want), key
    # Exported weights load back to the same stack.
    again = StackedConvNet(3, net)
    again.load(out, masks)
    for a, b in zip(again.export(), out, strict=True):
        assert all(np.array_equal(a[key], b[key]) for key in b)


def test_masks_and_weights_of_another_shape_are_refused() -> None:
    stack = StackedConvNet(2, MNIST_CONV2)
    inits = [glorot_normal_init(np.random.default_rng(k), MNIST_CONV2) for k in range(2)]
    good = [random_mask(MNIST_CONV2, k) for k in range(2)]
    stack.load(inits, good)
    before = stack.export()
    cifar_mask = random_mask(CIFAR_CONV2, 0)  # conv1 has 3 input channels, fc1 16384 rows
    with pytest.raises(
        MaskError, match=r"mask of network 1: layer 'conv1' has shape \(3, 3, 3, 64\)"
    ):
        stack.load(inits, [good[0], cifar_mask])
    with pytest.raises(MaskError, match="missing layers"):
        stack.load(inits, [good[0], random_mask(arch.LENET, 0)])
    wrong = dict(inits[0], **{"fc1/kernel": np.zeros((784, 256), np.float32)})
    with pytest.raises(
        MaskError, match=r"weights of network 0: 'fc1/kernel' has shape \(784, 256\)"
    ):
        stack.load([wrong, inits[1]], good)
    with pytest.raises(ValueError, match="expected 2 weight sets and masks, got 1 and 2"):
        stack.load(inits[:1], good)
    # Nothing was half-loaded by the refused calls.
    after = stack.export()
    assert all(np.array_equal(after[k][key], before[k][key]) for k in range(2) for key in after[k])
    with pytest.raises(ValueError, match="starts with a dense layer"):
        StackedConvNet(2, arch.LENET)


def test_glorot_init_uses_conv_fans() -> None:
    """θ0 as `arch.glorot_normal_init` draws it: conv fans k·k·c_in and k·k·c_out."""
    assert convnet.glorot_normal_init is arch.glorot_normal_init
    w = glorot_normal_init(np.random.default_rng(0), CIFAR_CONV2)
    assert list(w) == list(CIFAR_CONV2.weight_shapes())
    std = np.sqrt(2.0 / (9 * 64 + 9 * 64)) / 0.87962566103423978  # conv2: 3×3, 64 -> 64
    kernel = w["conv2/kernel"]
    assert np.abs(kernel).max() <= 2 * std * (1 + 1e-6)
    assert abs(kernel.std() / (std * 0.87962566) - 1) < 0.02
    again = glorot_normal_init(np.random.default_rng(0), CIFAR_CONV2)
    assert all(np.array_equal(w[key], again[key]) for key in w)


# ---------------------------------------------------------------- the engine on real MNIST


@pytest.fixture(scope="module")
def small_split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    """The real MNIST split cut down: 300 training, 100 validation and 100 test images."""
    out = tmp_path_factory.mktemp("split") / "data"
    prepare(ROOT / "data" / "mnist", out, validation_size=5000, stratified=True, seed=0)
    s = load_split(out)
    return Split(
        s.x_train[:300],
        s.y_train[:300],
        s.x_val[:100],
        s.y_val[:100],
        s.x_test[:100],
        s.y_test[:100],
    )


def test_engine_trains_a_conv2_stack_on_mnist(small_split: Split) -> None:
    cfg = TrainConfig(iterations=20, batch_size=20, learning_rate=2e-3, eval_every=5)
    engine = Engine(small_split, 2, cfg, arch=MNIST_CONV2)
    assert isinstance(engine.model, StackedConvNet)
    inits = [glorot_normal_init(np.random.default_rng([8, k]), MNIST_CONV2) for k in range(2)]
    masks = [random_mask(MNIST_CONV2, 20 + k) for k in range(2)]
    results = engine.train(inits, masks, [3, 4], progress=lambda _: None)
    for k, res in enumerate(results):
        loss = res.curves["train_loss"]
        assert len(loss) == 4 and loss[-1] < 0.8 * loss[0], loss
        assert res.curves["val_loss"][-1] < res.curves["val_loss"][0]
        for name, mask in masks[k].items():
            assert not res.weights[kernel_key(name)][~mask].any(), name
    # Restacking carries a network's rows over exactly.
    engine.restack([1])
    assert engine.model.n_networks == 1
    for key, value in engine.model.export()[0].items():
        assert np.array_equal(value, results[1].weights[key]), key


def test_engine_refuses_images_of_another_shape(small_split: Split) -> None:
    with pytest.raises(ValueError, match=r"conv2 on 32x32x3 .* 3072 .* 784"):
        Engine(small_split, 2, TrainConfig(iterations=5), arch=CIFAR_CONV2)


def test_engine_trajectory_is_the_same_whatever_its_neighbours(small_split: Split) -> None:
    """Through the engine (its compiled chunk and evaluations): network 0 alone, beside
    network 1 and beside networks 2 and 3 gives the same weights and curves bit for bit."""
    cfg = TrainConfig(iterations=6, batch_size=10, eval_every=3)
    inits = [glorot_normal_init(np.random.default_rng([9, k]), MNIST_CONV2) for k in range(4)]
    masks = [random_mask(MNIST_CONV2, 30 + k) for k in range(4)]
    runs = []
    for ids in ([0, 1], [0, 2, 3], [0]):
        engine = Engine(small_split, len(ids), cfg, arch=MNIST_CONV2)
        picked = [inits[i] for i in ids], [masks[i] for i in ids], [5 + i for i in ids]
        runs.append(engine.train(*picked, progress=lambda _: None))
    (ref, beside), (other, *_), (alone,) = runs
    for res in (other, alone):
        assert res.curves == ref.curves
        for key, value in ref.weights.items():
            assert np.array_equal(res.weights[key], value), key
    assert beside.curves["val_loss"] != ref.curves["val_loss"]
