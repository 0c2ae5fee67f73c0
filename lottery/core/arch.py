"""Network architectures: the layer names and shapes every other module agrees on.

An `Architecture` is an ordered tuple of prunable `Layer`s (convolutions first, then dense
layers, the last one named `out`) plus the input image shape. `build` makes one from the
`model` section of params.yaml: `mlp` with any hidden widths (LeNet-300-100 is `mlp` with
hidden [300, 100], the default) or `conv2` / `conv4` / `conv6` of Frankle & Carbin §3
(3×3 convolutions, "same" padding, 64/128/256 channels in pairs, each pair followed by a
2×2 max-pool, then dense 256-256-10).

`glorot_normal_init` draws θ0 for any architecture with NumPy. Pure Python and NumPy (no
TensorFlow import), so masks, pruning, audits and the `init` stage stay cheap to load. The
module-level constants describe LeNet-300-100 on 28×28×1 images, the default network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import Literal

import numpy as np

NETWORKS: tuple[str, ...] = ("mlp", "conv2", "conv4", "conv6")
#: The layer types a pruning rate can be given for: every conv layer, every hidden dense
#: layer, the output layer.
LAYER_TYPES: tuple[str, ...] = ("conv", "fc", "out")
#: Channels of each conv pair, by network (each pair is followed by a 2×2 max-pool).
CONV_PAIRS: dict[str, tuple[int, ...]] = {
    "conv2": (64,),
    "conv4": (64, 128),
    "conv6": (64, 128, 256),
}
#: Hidden dense widths after the convolutions (Frankle & Carbin §3).
CONV_DENSE: tuple[int, ...] = (256, 256)
CONV_KERNEL = 3


@dataclass(frozen=True)
class Layer:
    """One prunable layer: `conv` kernels are (3, 3, c_in, c_out), `dense` (fan_in, fan_out)."""

    name: str  # conv1, conv2, ..., fc1, fc2, ..., out
    kind: Literal["conv", "dense"]
    kernel_shape: tuple[int, ...]
    pool_after: bool = False  # a 2×2 max-pool (stride 2, "valid") follows this conv layer

    @property
    def fan_out(self) -> int:
        return self.kernel_shape[-1]

    @property
    def size(self) -> int:
        return prod(self.kernel_shape)

    @property
    def type(self) -> str:
        """`conv`, `fc` (a hidden dense layer) or `out`: the key of its per-type pruning rate."""
        if self.kind == "conv":
            return "conv"
        return "out" if self.name == "out" else "fc"


@dataclass(frozen=True)
class Architecture:
    network: str  # one of NETWORKS
    input_shape: tuple[int, int, int]  # (height, width, channels) of one image
    layers: tuple[Layer, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def kernel_shapes(self) -> dict[str, tuple[int, ...]]:
        return {layer.name: layer.kernel_shape for layer in self.layers}

    @property
    def n_inputs(self) -> int:
        return prod(self.input_shape)

    @property
    def n_classes(self) -> int:
        return self.layers[-1].fan_out

    @property
    def n_prunable(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def types(self) -> tuple[str, ...]:
        """The layer types present, in `LAYER_TYPES` order."""
        present = {layer.type for layer in self.layers}
        return tuple(t for t in LAYER_TYPES if t in present)

    def describe(self) -> str:
        """E.g. `mlp 784-300-100-10 on 28x28x1` or `conv2 on 32x32x3`, for messages."""
        shape = "x".join(map(str, self.input_shape))
        if self.network != "mlp":
            return f"{self.network} on {shape}"
        widths = [self.n_inputs, *(layer.fan_out for layer in self.layers)]
        return f"mlp {'-'.join(map(str, widths))} on {shape}"

    def rate_keys(self) -> str:
        """The keys a pruning rate can have, for messages: layers, then types."""
        return f"its layers {', '.join(self.names)} or layer types {', '.join(self.types)}"

    def rate_for(self, layer: str, rates: Mapping[str, float]) -> float | None:
        """The rate of `layer` in `rates` keyed by layer name or by layer type (`conv`, `fc`,
        `out`, see `Layer.type`): its own name first, else its type; None if neither."""
        if layer in rates:
            return rates[layer]
        return rates.get(self.layer(layer).type)

    def layer_rates(self, rates: Mapping[str, float]) -> dict[str, float]:
        """One rate per layer in forward order (`rate_for`): the one place per-type rates
        are resolved. ValueError when a key is neither a layer nor a type of this network,
        or when a layer gets no rate.
        """
        unknown = [str(k) for k in rates if k not in self.names and k not in self.types]
        if unknown:
            raise ValueError(
                f"rates for {', '.join(unknown)}, which {self.describe()} does not have; "
                f"give rates for {self.rate_keys()}"
            )
        resolved = {name: self.rate_for(name, rates) for name in self.names}
        missing = [name for name, rate in resolved.items() if rate is None]
        if missing:
            raise ValueError(
                f"no rate for the layers {', '.join(missing)} of {self.describe()}; give "
                f"rates for {self.rate_keys()}"
            )
        return {name: rate for name, rate in resolved.items() if rate is not None}

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(
            f"{name!r} is not a layer of {self.network} (layers: {', '.join(self.names)})"
        )

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of every array in a weights file: `fc1/kernel`, `fc1/bias`, ..."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            shapes[kernel_key(layer.name)] = layer.kernel_shape
            shapes[bias_key(layer.name)] = (layer.fan_out,)
        return shapes

    @property
    def first_layer_sees_pixels(self) -> bool:
        """True when the first layer is dense on a single-channel image (the 28×28 pixel map
        of its mask means something)."""
        return self.layers[0].kind == "dense" and self.input_shape[2] == 1


def _dense_stack(fan_in: int, widths: Sequence[int], n_classes: int) -> list[Layer]:
    layers: list[Layer] = []
    for i, width in enumerate(widths):
        layers.append(Layer(f"fc{i + 1}", "dense", (fan_in, width)))
        fan_in = width
    layers.append(Layer("out", "dense", (fan_in, n_classes)))
    return layers


def build(
    network: str,
    input_shape: tuple[int, int, int] = (28, 28, 1),
    hidden: Sequence[int] = (300, 100),
    n_classes: int = 10,
) -> Architecture:
    """The architecture `network` on images of `input_shape`; `hidden` is for `mlp` only.

    Raises ValueError for an unknown network, a hidden width that is not a positive
    integer, or an image too small for the network's max-pools.
    """
    if len(input_shape) != 3 or not all(_positive(d) for d in input_shape):
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}")
    if network == "mlp":
        if not all(_positive(w) for w in hidden):
            raise ValueError(f"hidden widths must be positive integers, got {list(hidden)!r}")
        layers = _dense_stack(prod(input_shape), hidden, n_classes)
        return Architecture(network, tuple(input_shape), tuple(layers))  # type: ignore[arg-type]
    if network not in CONV_PAIRS:
        raise ValueError(f"unknown network {network!r}: one of {', '.join(NETWORKS)}")
    height, width, channels = input_shape
    conv: list[Layer] = []
    for pair in CONV_PAIRS[network]:
        for second in (False, True):
            k = CONV_KERNEL
            conv.append(Layer(f"conv{len(conv) + 1}", "conv", (k, k, channels, pair), second))
            channels = pair
        height, width = height // 2, width // 2
    flat = height * width * channels
    if flat == 0:
        raise ValueError(
            f"{network} halves the image {len(CONV_PAIRS[network])} times: "
            f"{input_shape[0]}x{input_shape[1]} is too small"
        )
    layers = conv + _dense_stack(flat, CONV_DENSE, n_classes)
    return Architecture(network, tuple(input_shape), tuple(layers))  # type: ignore[arg-type]


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def kernel_key(layer: str) -> str:
    return f"{layer}/kernel"


def bias_key(layer: str) -> str:
    return f"{layer}/bias"


#: LeNet-300-100 on 28×28×1 images: the default network.
LENET = build("mlp")
#: Prunable layers of LeNet-300-100 in forward order: name -> kernel shape (fan_in, fan_out).
LAYER_SHAPES: dict[str, tuple[int, int]] = LENET.kernel_shapes  # type: ignore[assignment]
LAYERS: tuple[str, ...] = LENET.names
N_INPUTS = LENET.n_inputs
N_CLASSES = LENET.n_classes
#: 266,200 prunable kernel weights; biases are never pruned.
N_PRUNABLE = LENET.n_prunable


def weight_shapes() -> dict[str, tuple[int, ...]]:
    """Shapes of every array in a LeNet-300-100 weights file: `fc1/kernel`, `fc1/bias`, ..."""
    return LENET.weight_shapes()


def glorot_fans(kernel_shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them: a dense (fan_in, fan_out) kernel as is; a
    conv kernel (kh, kw, c_in, c_out) has fan_in kh*kw*c_in and fan_out kh*kw*c_out."""
    receptive = int(np.prod(kernel_shape[:-2], dtype=np.int64))
    return receptive * kernel_shape[-2], receptive * kernel_shape[-1]


def glorot_normal_init(rng: np.random.Generator, arch: Architecture) -> dict[str, np.ndarray]:
    """A Gaussian Glorot init (as Keras' `glorot_normal`), biases zero, drawn with NumPy.

    Keras' `glorot_normal` samples a normal truncated at two standard deviations with
    stddev sqrt(2 / (fan_in + fan_out)) / 0.87962566 (fans by `glorot_fans`). We draw it in
    NumPy from a seeded generator, layer by layer in forward order, so that θ0 is the same
    bit for bit on every machine and device. Any `Architecture`, dense or conv layers.
    """
    weights: dict[str, np.ndarray] = {}
    for layer in arch.layers:
        name, shape = layer.name, layer.kernel_shape
        fan_in, fan_out = glorot_fans(shape)
        std = np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
        draw = rng.standard_normal(shape)
        bad = np.abs(draw) > 2.0
        while bad.any():  # resample outside +-2 std: a truncated normal
            draw[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(draw) > 2.0
        weights[kernel_key(name)] = (draw * std).astype(np.float32)
        weights[bias_key(name)] = np.zeros(layer.fan_out, dtype=np.float32)
    return weights
