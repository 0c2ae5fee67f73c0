"""Conv-2/4/6 holding K independent networks side by side (the conv twin of `StackedMLP`).

`StackedConvNet(K, arch)` offers the training engine what `mlp.StackedMLP` does:
`trainable`, `__call__` on the K networks' own training batches, `logits_each` on one
shared evaluation batch, `load`, `export`, and `layers` (every masked layer in forward
order, each with `kernel`, `bias` and `mask` variables whose axis 0 is the network: what
`Engine.restack` copies row by row). Images arrive flattened in HWC order, as the data
pipeline stores them, and are reshaped to `arch.input_shape` here.

Each layer keeps kernels of shape (K, *kernel_shape), biases (K, fan_out) and a 0/1 mask
of the kernel's shape; the forward pass uses `kernel * mask`, so pruned weights get a zero
gradient and stay exactly zero under Adam. Convolutions are 3×3, stride 1, "same"
padding, then ReLU; a 2×2 max-pool (stride 2) follows each pair; the dense layers are
ReLU but for `out` (logits).

Every network runs as its own chain of plain 2-D convolutions and matmuls, unrolled when
the step is traced (K is fixed then), and each network's loss is reduced on its own (a
cross-entropy over all K·B rows at once had other last bits at K = 1): a network's
trajectory is bit-identical alone or in a stack of any size (tests/engine/test_convnet.py). Two
other formulations were measured on CPU: a grouped convolution over the channel-stacked
networks (`feature_group_count` = K) changes its last bits with K, with or without XLA
(and is no faster without it); patches (`extract_patches`) times a batched matmul is
bit-stable under XLA but ~20x slower than the unrolled chain without XLA. On a 2-core CPU
a conv stack gains nothing over one network at a time (the Conv-2 line of `lottery bench`:
K = 2..8 at ~1.0x the net-it/s of K = 1): the convolutions are compute-bound already at
batch 60.

The engine compiles conv stacks without XLA (`XLA`): XLA's CPU convolutions, their
gradients above all, ran ~100x slower than TensorFlow's own (oneDNN) kernels here (6.0
against 0.062 CPU-seconds per network-iteration, Conv-2 on 28×28×1, batch 20).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lottery.core.arch import Architecture, Layer, bias_key, glorot_normal_init, kernel_key
from lottery.core.masks import Mask, Weights, validate_mask, validate_weights
from lottery.engine.mlp import export_stack, tf

#: Compile conv stacks' steps with XLA (the engine reads it): off, see the module doc.
XLA = False
#: Evaluation runs over the shared batch in chunks of this many rows (bounds the memory
#: of the activations: 500 × 32×32×64 floats is 131 MB per layer and network).
EVAL_ROWS = 500


class StackedMaskedLayer(tf.Module):  # type: ignore[misc]
    """One prunable layer of K networks: kernel (K, *shape), bias (K, fan_out), mask."""

    def __init__(self, n_networks: int, layer: Layer) -> None:
        super().__init__(name=layer.name)
        self.spec = layer
        shape = (n_networks, *layer.kernel_shape)
        self.kernel = tf.Variable(tf.zeros(shape), name="kernel")
        self.bias = tf.Variable(tf.zeros((n_networks, layer.fan_out)), name="bias")
        self.mask = tf.Variable(tf.ones(shape), name="mask", trainable=False)

    def network(self, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Network k's (masked kernel, bias); k may be a tensor (an evaluation's row: a
        gather, which XLA compiles once for any k, where a slice needs k at compile time)."""
        return tf.gather(self.kernel, k) * tf.gather(self.mask, k), tf.gather(self.bias, k)

    def per_network(self) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Each network's (masked kernel, bias): unstacked once per trace, so each gradient
        flows back as one stack of K slices, not K zero-padded full-size tensors summed."""
        kernels = tf.unstack(self.kernel * self.mask)
        return list(zip(kernels, tf.unstack(self.bias), strict=True))

    def apply(self, kernel: tf.Tensor, bias: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
        """One network's layer on its activations h: (B, H, W, C) for conv, (B, F) dense."""
        if self.spec.kind == "conv":
            h = tf.nn.relu(tf.nn.conv2d(h, kernel, strides=1, padding="SAME") + bias)
            if self.spec.pool_after:
                h = tf.nn.max_pool2d(h, ksize=2, strides=2, padding="VALID")
            return h
        if h.shape.rank > 2:  # the first dense layer flattens the last conv block (HWC)
            h = tf.reshape(h, (tf.shape(h)[0], self.spec.kernel_shape[0]))
        h = tf.matmul(h, kernel) + bias
        return h if self.spec.name == "out" else tf.nn.relu(h)


class StackedConvNet(tf.Module):  # type: ignore[misc]
    """K masked conv networks of one `Architecture` (Conv-2/4/6 on any image shape)."""

    def __init__(self, n_networks: int, architecture: Architecture) -> None:
        super().__init__(name=f"stacked_{architecture.network}")
        if architecture.layers[0].kind != "conv":
            raise ValueError(
                f"StackedConvNet builds conv networks; {architecture.describe()} starts "
                f"with a dense layer (use lottery.engine.mlp.StackedMLP)"
            )
        self.n_networks = n_networks
        self.arch = architecture
        self.layers = [StackedMaskedLayer(n_networks, layer) for layer in architecture.layers]

    @property
    def trainable(self) -> list[tf.Variable]:
        """kernel, bias of each layer in order (the masks are not trained)."""
        return [v for layer in self.layers for v in (layer.kernel, layer.bias)]

    def _networks(
        self, xs: Sequence[tf.Tensor], rows: Sequence[int | tf.Tensor] | None = None
    ) -> tf.Tensor:
        """Network rows[i] on flat images xs[i] (B, H·W·C) -> (len(xs), B, n_classes);
        rows default to 0, 1, … (every network on its own images: training)."""
        if rows is None:
            per_layer = [layer.per_network() for layer in self.layers]
            nets = [[p[k] for p in per_layer] for k in range(len(xs))]
        else:
            nets = [[layer.network(k) for layer in self.layers] for k in rows]
        out = []
        for params, x in zip(nets, xs, strict=True):
            h = tf.reshape(x, (-1, *self.arch.input_shape))
            for layer, (kernel, bias) in zip(self.layers, params, strict=True):
                h = layer.apply(kernel, bias, h)
            out.append(h)
        return tf.stack(out)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Training logits: each network on its own batch, (K, B, H·W·C) -> (K, B, classes)."""
        return self._networks(tf.unstack(x, num=self.n_networks))

    def losses(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Each network's mean cross-entropy on its own batch: x (K, B, H·W·C), y (K, B)
        -> (K,), each network's loss computed and reduced on its own (a cross-entropy over
        all K·B rows is vectorised, and rounded, differently as K changes)."""
        logits = tf.unstack(self(x), num=self.n_networks)
        labels = tf.unstack(y, num=self.n_networks)
        return tf.stack(
            [
                tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=lg)
                )
                for lab, lg in zip(labels, logits, strict=True)
            ]
        )

    def logits_each(self, x: tf.Tensor, rows: Sequence[int | tf.Tensor] | None = None) -> tf.Tensor:
        """Logits of networks `rows` (default all; a row may be a tensor) on one shared batch
        (N, H·W·C) -> (R, N, n_classes).

        In chunks of `EVAL_ROWS` rows (the last one zero-padded), each network's chain on
        each chunk: a network's numbers depend neither on K nor on the other networks.
        """
        n_examples = x.shape[0]
        chunk = min(n_examples, EVAL_ROWS) if n_examples else EVAL_ROWS
        n = tf.shape(x)[0]
        padded = tf.pad(x, [[0, (chunk - n % chunk) % chunk], [0, 0]])
        chunks = tf.reshape(padded, (-1, chunk, self.arch.n_inputs))
        picked = list(range(self.n_networks)) if rows is None else list(rows)
        out = tf.map_fn(
            lambda c: self._networks([c] * len(picked), picked),
            chunks,
            fn_output_signature=tf.TensorSpec((len(picked), chunk, self.arch.n_classes)),
        )  # (chunks, R, chunk, classes)
        out = tf.reshape(tf.transpose(out, (1, 0, 2, 3)), (len(picked), -1, out.shape[-1]))
        return out[:, :n]

    def load(self, weights: Sequence[Weights], masks: Sequence[Mask]) -> None:
        """Set the K networks to `weights[k] * masks[k]` with masks `masks[k]`.

        Every mask and weights dict is checked against the architecture first (MaskError
        naming the network, the layer, the shapes and the fix), so nothing is half-loaded.
        """
        if len(weights) != self.n_networks or len(masks) != self.n_networks:
            raise ValueError(
                f"expected {self.n_networks} weight sets and masks, "
                f"got {len(weights)} and {len(masks)}"
            )
        arch = self.arch
        masks = [validate_mask(m, f"mask of network {k}", arch=arch) for k, m in enumerate(masks)]
        weights = [
            validate_weights(w, f"weights of network {k}", arch=arch) for k, w in enumerate(weights)
        ]
        for layer in self.layers:
            name = layer.spec.name
            m = np.stack([mk[name] for mk in masks]).astype(np.float32)
            w = np.stack([wk[kernel_key(name)] for wk in weights])
            layer.mask.assign(m)
            layer.kernel.assign(w * m)
            layer.bias.assign(np.stack([wk[bias_key(name)] for wk in weights]))

    def export(self) -> list[Weights]:
        """The K networks' weights as NumPy dicts (kernels already masked), in the key
        order of `arch.weight_shapes()`."""
        return export_stack(((layer.spec.name, layer) for layer in self.layers), self.n_networks)


__all__ = ["EVAL_ROWS", "XLA", "StackedConvNet", "StackedMaskedLayer", "glorot_normal_init"]
