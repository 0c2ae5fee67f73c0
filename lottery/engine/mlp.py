"""A masked MLP (LeNet-300-100 by default) holding K independent networks side by side, its
Glorot init for any `Architecture`, and the Adam optimiser.

Each `StackedMaskedDense` layer keeps a kernel of shape (K, fan_in, fan_out), a bias of
shape (K, fan_out) and a non-trainable 0/1 mask of the kernel's shape. The forward pass
uses `kernel * mask`, so the gradient of every pruned weight is exactly zero and Adam
never regrows it (no per-batch `set_weights`, no `kernel_constraint`). K = 1 is a plain
masked MLP; K > 1 trains trials and controls together in one step. Convolutional
networks are built in `lottery.engine.conv`.

Plain `tf.Module`s and `tf.Variable`s, not Keras layers: a training stage never imports
Keras, which saves ~7 s of every stage's start on 2 cores (see `_import_tensorflow`).
`Adam` performs exactly the arithmetic of Keras 3's `keras.optimizers.Adam` (same
expressions, same order), so results match it bit for bit (tests/engine/test_engine.py).

This is the only module (with `training.py`) that imports TensorFlow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from lottery.core.arch import Architecture, bias_key, kernel_key
from lottery.core.machine import threads
from lottery.core.masks import Mask, Weights
from lottery.engine import compile_cache


def _import_tensorflow() -> ModuleType:
    """`import tensorflow` with Keras hidden while it loads (TF tolerates that).

    `import tensorflow` eagerly loads `keras.src.optimizers`, i.e. all of Keras, and Keras
    in turn scikit-learn and matplotlib.pyplot when installed (MLflow installs both): ~7 s
    of every stage's start on 2 cores, for nothing the engine uses. A `None` entry in
    `sys.modules` makes that import fail with the ImportError TensorFlow catches; it is
    removed as soon as TensorFlow is loaded, so Keras stays importable (`lottery bench`).
    XLA's persistent compilation cache is set up first (`compile_cache`). TensorFlow's C++
    log shows errors only (level 2), or nothing below fatal (3) when the cache is on: for each
    entry it reads, TensorFlow first tries the text format and logs that parse's error. A
    `TF_CPP_MIN_LOG_LEVEL` of the user's wins. The intra-op pool gets a fixed size whatever
    the machine's cores (`lottery.core.machine.threads`: a network's bits depend on it).
    """
    if "tensorflow" in sys.modules:  # already loaded (with Keras) by the caller
        tf = sys.modules["tensorflow"]
        _fix_threads(tf)
        return tf
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if compile_cache.enable() else "2")
    hide = "keras" not in sys.modules
    if hide:
        sys.modules["keras"] = None  # type: ignore[assignment]
    try:
        import tensorflow
    finally:
        if hide and "keras" in sys.modules and sys.modules["keras"] is None:
            del sys.modules["keras"]
    return tensorflow


def _fix_threads(tf: Any) -> None:
    """Size the intra-op pool of a TensorFlow that someone else imported; refuse to train
    with another size if its runtime already started (the bits would be another pool's)."""
    want = threads()
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    if configured == want or (
        configured == 0 and os.environ.get("TF_NUM_INTRAOP_THREADS") == str(want)
    ):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(want)
    except RuntimeError as exc:
        raise RuntimeError(
            f"TensorFlow started with another intra-op pool than the engine's {want} threads, "
            "and a network's bits depend on it: import lottery.engine before running any "
            f"TensorFlow op, or set TF_NUM_INTRAOP_THREADS={want} before importing TensorFlow"
        ) from exc


if TYPE_CHECKING:
    import tensorflow as tf
else:
    tf = _import_tensorflow()


class StackedMaskedDense(tf.Module):  # type: ignore[misc]
    """K masked dense layers applied to K separate inputs: (K, B, in) -> (K, B, out)."""

    def __init__(
        self, n_networks: int, fan_in: int, fan_out: int, name: str, stable: bool = True
    ) -> None:
        super().__init__(name=name)
        self.n_networks = n_networks
        self.stable = stable
        self.fan_in = fan_in
        self.fan_out = fan_out
        shape = (n_networks, fan_in, fan_out)
        self.kernel = tf.Variable(tf.zeros(shape), name="kernel")
        self.bias = tf.Variable(tf.zeros((n_networks, fan_out)), name="bias")
        self.mask = tf.Variable(tf.ones(shape), name="mask", trainable=False)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        z = tf.matmul(x, self.kernel * self.mask)
        if not self.stable:  # the batched bias gradient: last bits depend on K (`lottery bench`)
            return z + self.bias[:, None, :]
        return add_bias_each(z, self.bias)


#: Width of the ones matrix that sums a batch as a GEMM (`add_bias_each`, `mean_each`): 2,
#: not 1, so that XLA keeps a stack of one network on the same GEMM kernel as larger stacks
#: (a width-1 product is rewritten into a reduction when K = 1, with other last bits).
_ONES_WIDTH = 2


def _sum_over_batch(t: tf.Tensor) -> tf.Tensor:
    """Each network's sum over the batch axis, (K, B, F) -> (K, F), as one batched GEMM
    with a ones matrix: each network's numbers are the same whatever K is (a reduction of
    the whole (K, B, F) tensor is blocked, and rounded, differently as K changes)."""
    ones = tf.ones([tf.shape(t)[0], tf.shape(t)[1], _ONES_WIDTH], t.dtype)
    return tf.matmul(t, ones, transpose_a=True)[:, :, 0]


@tf.custom_gradient  # type: ignore[misc]
def add_bias_each(z: tf.Tensor, bias: tf.Tensor) -> Any:
    """z + bias for K networks, z (K, B, F) and bias (K, F). The bias gradient (the sum of
    dz over the batch) is taken per network by `_sum_over_batch`, so that a network's
    trajectory does not depend on how many networks share its stack."""

    def grad(dz: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return dz, _sum_over_batch(dz)

    return z + bias[:, None, :], grad


def mean_each(values: tf.Tensor) -> tf.Tensor:
    """Each network's mean over the batch, (K, B) -> (K,), stack-size independent (see
    `_sum_over_batch`)."""
    n = tf.cast(tf.shape(values)[1], values.dtype)
    return _sum_over_batch(values[:, :, None])[:, 0] / n


class StackedMLP(tf.Module):  # type: ignore[misc]
    """K masked MLPs of one dense `Architecture`: Dense -> ReLU -> ... -> Dense (logits).

    LeNet-300-100 (`arch.LENET`) is Dense 300 -> ReLU -> Dense 100 -> ReLU -> Dense 10.
    `stable=False` builds the earlier formulation, whose batch sums run over the whole
    stack (a network's last bits then depend on K): `lottery bench` times it side by side.
    """

    def __init__(self, n_networks: int, arch: Architecture, stable: bool = True) -> None:
        super().__init__(name="stacked_lenet")
        convs = [layer.name for layer in arch.layers if layer.kind != "dense"]
        if convs:
            raise ValueError(
                f"StackedMLP builds dense networks only; {arch.describe()} has the conv layers "
                f"{', '.join(convs)} (see lottery.engine.conv)"
            )
        self.n_networks = n_networks
        self.arch = arch
        self.stable = stable
        self.dense = [
            StackedMaskedDense(n_networks, layer.kernel_shape[0], layer.fan_out, layer.name, stable)
            for layer in arch.layers
        ]

    @property
    def trainable(self) -> list[tf.Variable]:
        """kernel, bias of each layer in order (the masks are not trained)."""
        return [v for layer in self.dense for v in (layer.kernel, layer.bias)]

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        for i, layer in enumerate(self.dense):
            x = layer(x)
            if i < len(self.dense) - 1:
                x = tf.nn.relu(x)
        return x

    def losses(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Each network's mean cross-entropy on its own batch: x (K, B, inputs), y (K, B)
        -> (K,). Every batch-axis sum is taken per network (`add_bias_each`, `mean_each`),
        so a network's loss and gradients are bit-identical in a stack of any size."""
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=self(x))
        return mean_each(ce) if self.stable else tf.reduce_mean(ce, axis=1)

    def logits_each(self, x: tf.Tensor, rows: Sequence[int | tf.Tensor] | None = None) -> tf.Tensor:
        """Logits of networks `rows` (default all; a row may be a tensor, which one program
        then serves for any network) on one shared batch (N, 784) -> (R, N, 10).

        One plain 2-D matmul chain per network (unrolled: K is fixed when traced), so each
        network's numbers are the same whatever else is in the stack (a single GEMM over
        all K networks' columns changes its blocking, and last bits, with K) and run at
        large-GEMM speed (~1.5x a batched matmul over a broadcast input on CPU).
        """
        out = []
        for k in range(self.n_networks) if rows is None else rows:
            h = x
            for i, layer in enumerate(self.dense):
                # a gather, not a slice: XLA compiles a slice for each value of a tensor k
                kernel = tf.gather(layer.kernel, k) * tf.gather(layer.mask, k)
                h = tf.matmul(h, kernel) + tf.gather(layer.bias, k)
                if i < len(self.dense) - 1:
                    h = tf.nn.relu(h)
            out.append(h)
        return tf.stack(out)

    def load(self, weights: Sequence[Weights], masks: Sequence[Mask]) -> None:
        """Set the K networks to `weights[k] * masks[k]` with masks `masks[k]`."""
        if len(weights) != self.n_networks or len(masks) != self.n_networks:
            raise ValueError(
                f"expected {self.n_networks} weight sets and masks, "
                f"got {len(weights)} and {len(masks)}"
            )
        for layer, name in zip(self.dense, self.arch.names, strict=True):
            m = np.stack([mk[name] for mk in masks]).astype(np.float32)
            w = np.stack([wk[kernel_key(name)] for wk in weights]).astype(np.float32)
            layer.mask.assign(m)
            layer.kernel.assign(w * m)
            layer.bias.assign(np.stack([wk[bias_key(name)] for wk in weights]).astype(np.float32))

    def export(self) -> list[Weights]:
        """The K networks' weights as NumPy dicts (kernels already masked)."""
        return export_stack(zip(self.arch.names, self.dense, strict=True), self.n_networks)


def export_stack(layers: Iterable[tuple[str, Any]], n_networks: int) -> list[Weights]:
    """Split stacked layers ((name, layer with `kernel`, `bias`, `mask` of leading axis K),
    in forward order) into K weights dicts, kernels masked."""
    out: list[Weights] = [{} for _ in range(n_networks)]
    for name, layer in layers:
        kernel = (layer.kernel * layer.mask).numpy()
        bias = layer.bias.numpy()
        for k in range(n_networks):
            out[k][kernel_key(name)] = kernel[k].copy()
            out[k][bias_key(name)] = bias[k].copy()
    return out


class Adam(tf.Module):  # type: ignore[misc]
    """Adam (Kingma & Ba) as Keras 3 computes it, for a fixed list of variables.

    Per step t (1-based): m += (g - m)(1 - β1); v += (g² - v)(1 - β2);
    θ -= m·α / (√v + ε) with α = lr·√(1 - β2^t) / (1 - β1^t); Keras' defaults
    β1 = 0.9, β2 = 0.999, ε = 1e-7.
    """

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        learning_rate: float,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(name="adam")
        self.variables_ = list(variables)
        self.learning_rate = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables_]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables_]

    def reset(self) -> None:
        """A fresh optimiser: moments and step count back to zero."""
        self.iterations.assign(0)
        for slot in (*self.m, *self.v):
            slot.assign(tf.zeros_like(slot))

    def apply(self, grads: Sequence[tf.Tensor]) -> None:
        dtype = tf.float32
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        for g, var, m, v in zip(grads, self.variables_, self.m, self.v, strict=True):
            m.assign_add(tf.multiply(tf.subtract(g, m), 1 - self.beta_1))
            v.assign_add(tf.multiply(tf.subtract(tf.square(g), v), 1 - self.beta_2))
            var.assign_sub(tf.divide(tf.multiply(m, alpha), tf.add(tf.sqrt(v), self.epsilon)))
        self.iterations.assign_add(1)


def device_name() -> str:
    """The device TensorFlow trains on: the first GPU if one is visible, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
