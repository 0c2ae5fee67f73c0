"""LeNet-300-100 as a Keras 3 model that holds K independent networks side by side.

Each `StackedMaskedDense` layer keeps a kernel of shape (K, fan_in, fan_out), a bias of
shape (K, fan_out) and a non-trainable 0/1 mask of the kernel's shape. The forward pass
uses `kernel * mask`, so the gradient of every pruned weight is exactly zero and Adam
never regrows it (no per-batch `set_weights`, no `kernel_constraint`). K = 1 is a plain
masked LeNet; K > 1 trains trials and controls together in one step (design.md §6).

This is the only module (with `training.py`) that imports TensorFlow.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from lottery.arch import LAYER_SHAPES, LAYERS, bias_key, kernel_key
from lottery.masks import Mask, Weights


class StackedMaskedDense(keras.layers.Layer):
    """K masked dense layers applied to K separate inputs: (K, B, in) -> (K, B, out)."""

    def __init__(self, n_networks: int, fan_in: int, fan_out: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n_networks = n_networks
        self.fan_in = fan_in
        self.fan_out = fan_out
        shape = (n_networks, fan_in, fan_out)
        self.kernel = self.add_weight(shape=shape, initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(n_networks, fan_out), initializer="zeros", name="bias")
        self.mask = self.add_weight(shape=shape, initializer="ones", name="mask", trainable=False)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, self.kernel * self.mask) + self.bias[:, None, :]

    def call_shared(self, x: tf.Tensor) -> tf.Tensor:
        """The same layer on one input shared by all K networks: (N, in) -> (K, N, out)."""
        return tf.einsum("ni,kio->kno", x, self.kernel * self.mask) + self.bias[:, None, :]


class StackedLeNet(keras.Model):
    """K LeNet-300-100 networks: Dense 300 -> ReLU -> Dense 100 -> ReLU -> Dense 10 (logits)."""

    def __init__(self, n_networks: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n_networks = n_networks
        self.dense = [
            StackedMaskedDense(n_networks, *LAYER_SHAPES[name], name=name) for name in LAYERS
        ]

    def build(self, input_shape: object = None) -> None:
        self.built = True  # every weight is created in __init__

    def call(self, x: tf.Tensor) -> tf.Tensor:
        for i, layer in enumerate(self.dense):
            x = layer(x)
            if i < len(self.dense) - 1:
                x = tf.nn.relu(x)
        return x

    def logits_shared(self, x: tf.Tensor) -> tf.Tensor:
        """Logits of every network on one shared input batch (N, 784) -> (K, N, 10)."""
        h = tf.nn.relu(self.dense[0].call_shared(x))
        for i, layer in enumerate(self.dense[1:], start=1):
            h = layer(h)
            if i < len(self.dense) - 1:
                h = tf.nn.relu(h)
        return h

    def load(self, weights: Sequence[Weights], masks: Sequence[Mask]) -> None:
        """Set the K networks to `weights[k] * masks[k]` with masks `masks[k]`."""
        if len(weights) != self.n_networks or len(masks) != self.n_networks:
            raise ValueError(
                f"expected {self.n_networks} weight sets and masks, "
                f"got {len(weights)} and {len(masks)}"
            )
        for layer, name in zip(self.dense, LAYERS, strict=True):
            m = np.stack([mk[name] for mk in masks]).astype(np.float32)
            w = np.stack([wk[kernel_key(name)] for wk in weights]).astype(np.float32)
            layer.mask.assign(m)
            layer.kernel.assign(w * m)
            layer.bias.assign(np.stack([wk[bias_key(name)] for wk in weights]).astype(np.float32))

    def export(self) -> list[Weights]:
        """The K networks' weights as NumPy dicts (kernels already masked)."""
        out: list[Weights] = [{} for _ in range(self.n_networks)]
        for layer, name in zip(self.dense, LAYERS, strict=True):
            kernel = (layer.kernel * layer.mask).numpy()
            bias = layer.bias.numpy()
            for k in range(self.n_networks):
                out[k][kernel_key(name)] = kernel[k].copy()
                out[k][bias_key(name)] = bias[k].copy()
        return out


def glorot_normal_init(rng: np.random.Generator) -> Weights:
    """A Gaussian Glorot init (as Keras' `glorot_normal`), biases zero, drawn with NumPy.

    Keras' `glorot_normal` samples a normal truncated at two standard deviations with
    stddev sqrt(2 / (fan_in + fan_out)) / 0.87962566. We draw it in NumPy from a seeded
    generator so that θ0 is the same bit for bit on every machine and device.
    """
    weights: Weights = {}
    for name, (fan_in, fan_out) in LAYER_SHAPES.items():
        std = np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
        draw = rng.standard_normal((fan_in, fan_out))
        bad = np.abs(draw) > 2.0
        while bad.any():  # resample outside +-2 std: a truncated normal
            draw[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(draw) > 2.0
        weights[kernel_key(name)] = (draw * std).astype(np.float32)
        weights[bias_key(name)] = np.zeros(fan_out, dtype=np.float32)
    return weights


def device_name() -> str:
    """The device TensorFlow trains on: the first GPU if one is visible, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name


def enable_determinism() -> None:
    """Bit-identical results for the same inputs on CPU (design.md §9)."""
    tf.config.experimental.enable_op_determinism()
