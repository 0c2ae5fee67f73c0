"""The masked training engine: K networks trained side by side in one compiled step.

Every network k has its own initial weights, mask and data order (its own seed); they
share nothing but the matrix multiplications. The K networks are copies of one
`Architecture` (`stacks.stacked_model`): LeNet-300-100, any MLP (`mlp.StackedMLP`),
or Conv-2/4/6 (`conv.StackedConvNet`, which reshapes the flat images itself). Training
runs in chunks of `eval_every` iterations inside one `tf.function` (no Python per step);
after each chunk the networks are evaluated on the validation set, each network as its own
chain of GEMMs (or convolutions), so a network's numbers do not depend on what else is in
its stack.

Early stopping (`lottery.core.stopping`): the early-stop iteration is the evaluation with the
minimum validation loss; the reported accuracy is the test accuracy there. The test set
is evaluated only where a number needs it: at an evaluation where some network of the
stack reaches a new minimum validation loss, where some network stops, and every
`test_every` iterations for the learning curves. So the test accuracy at early stop and
at the last iteration trained are exact, computed on the weights of that iteration.

The weights a network returns (`TrainConfig.keep`) are those of its last iteration
("last": the paper prunes the weights at the horizon) or those of its minimum validation
loss ("best": Keras' `restore_best_weights`, kept in memory as the minimum moves).

With `patience` P > 0 a network's early stop is settled P iterations after its best
evaluation. A network that must train to the horizon (`to_horizon`: its weights feed a
later round) is then no longer evaluated but trains on, and is evaluated once more at the
horizon; any other network stops, and the stack is rebuilt without it (its rows of
weights, masks and Adam moments copied), so it costs nothing more.

A network's bits never depend on its neighbours: every sum over a batch (the bias
gradients, the loss, the evaluation's reductions) is taken per network, the GEMMs are
batched over the stack, and so a network trained alone, in a stack of any size, or in a
stack that shrinks as its neighbours stop, gives the same weights, curves and early stop
on CPU (tests/engine/test_engine.py). On a GPU, library kernels may choose their blocking by
the stack's size: there, bits may depend on the stack.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from lottery.core.arch import Architecture
from lottery.core.masks import Mask, Weights
from lottery.data.split import Split
from lottery.engine import stacks
from lottery.engine.config import (
    CURVE_KEYS,
    KEEP,
    BatchStream,
    EvalCallback,
    NetResult,
    TrainConfig,
    summarise,
)
from lottery.engine.conv import StackedConvNet
from lottery.engine.mlp import Adam, StackedMLP, device_name, tf
from lottery.engine.run import Run, stderr

#: Compile the train chunk and evaluation with XLA (env LOTTERY_JIT=0 turns it off).
JIT = os.environ.get("LOTTERY_JIT", "1") != "0"


class _DeliberateRetracing(logging.Filter):
    """An `Engine` compiles new functions on purpose: a stack is rebuilt, smaller, as its
    networks stop (`restack`), and its evaluation is traced once per set size; TensorFlow's
    warning about those traces is noise in a stage's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_DeliberateRetracing())


def check_inputs(split: Split, cfg: TrainConfig, arch: Architecture) -> None:
    """Refuse a split the network cannot read and settings the schedule cannot keep."""
    if split.x_train.shape[1] != arch.n_inputs:
        raise ValueError(
            f"{arch.describe()} takes images of {arch.n_inputs} values, "
            f"but the split's images have {split.x_train.shape[1]}: choose the network's "
            f"input shape to match the dataset (params.yaml)"
        )
    if cfg.patience and cfg.patience % cfg.eval_every:
        raise ValueError(f"patience ({cfg.patience}) must be a multiple of eval_every")
    if cfg.test_every is not None and (cfg.test_every < 1 or cfg.test_every % cfg.eval_every):
        raise ValueError(f"test_every ({cfg.test_every}) must be a multiple of eval_every")
    if cfg.keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP} (got {cfg.keep!r})")


def metrics_one(
    model: StackedMLP | StackedConvNet, x: tf.Tensor, y: tf.Tensor, row: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Loss and accuracy of the stack's network `row` on (x, y). `row` is a tensor, so one
    program evaluates any network of the stack, whatever else is in it (the model's
    `logits_each`), and is compiled once per stack and set size. (An unrolled program of
    the networks evaluated, compiled for each set of rows, took 11 of the 12.4 s a new stack
    of 16 LeNets spent compiling on a 2-core CPU.)"""
    logits = model.logits_each(x, [row])[0]  # (N, classes)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    hit = tf.equal(tf.argmax(logits, axis=1, output_type=y.dtype), y)
    return tf.reduce_mean(ce), tf.reduce_mean(tf.cast(hit, tf.float32))


def on_device(split: Split) -> dict[str, tuple[tf.Tensor, tf.Tensor]]:
    """The split's (images, labels) by part, as device tensors: training images stay uint8
    (scaled per batch); validation and test are scaled to [0, 1] once."""
    return {
        "train": (tf.constant(split.x_train), tf.constant(split.y_train.astype(np.int32))),
        "val": (
            tf.constant(split.x_val.astype(np.float32) / 255.0),
            tf.constant(split.y_val.astype(np.int32)),
        ),
        "test": (
            tf.constant(split.x_test.astype(np.float32) / 255.0),
            tf.constant(split.y_test.astype(np.int32)),
        ),
    }


def train_steps(
    model: StackedMLP | StackedConvNet,
    optimizer: Adam,
    x_train: tf.Tensor,
    y_train: tf.Tensor,
    idx: tf.Tensor,
) -> tf.Tensor:
    """Train the stack on batch indices (steps, K, B) into the training images and labels,
    inside one compiled function; each network's mean loss over the steps. The loop is
    TensorFlow's own `while_loop`, so the function traces without AutoGraph
    (`stacks.compiled`)."""
    steps = tf.shape(idx)[0]

    def step(i: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(tf.gather(x_train, idx[i]), tf.float32) / 255.0  # (K, B, 784)
        y = tf.gather(y_train, idx[i])  # (K, B)
        with tf.GradientTape() as tape:
            per_net = model.losses(x, y)
            loss = tf.reduce_sum(per_net)  # networks are independent: sum of their losses
        grads = tape.gradient(loss, model.trainable)
        optimizer.apply(grads)
        return i + 1, total + per_net

    start = (tf.constant(0), tf.zeros([idx.shape[1]]))  # K, static in the input signature
    _, total = tf.while_loop(lambda i, _: i < steps, step, start)
    return total / tf.cast(steps, tf.float32)


class Engine:
    """Holds the data on the device and the compiled steps for a stack of K networks.

    `stable=False` trains with the earlier batched formulation (see `mlp.StackedMLP`),
    whose last bits depend on the stack size: only `lottery bench` uses it, for the price.
    """

    def __init__(
        self,
        split: Split,
        n_networks: int,
        cfg: TrainConfig,
        arch: Architecture,
        stable: bool = True,
    ) -> None:
        check_inputs(split, cfg, arch)
        self.cfg = cfg
        self.arch = arch
        self.stable = stable
        self.k = n_networks
        self.data = on_device(split)
        self.n_train = int(split.x_train.shape[0])
        #: Seconds and counts of the last `train` call, by part (`lottery bench` reads them).
        self.timings: dict[str, float] = {}
        self._lease = stacks.Lease(self)
        self._build(n_networks)

    # ------------------------------------------------------------ the compiled stack

    def _build(self, n: int) -> None:
        """Take a stack of n networks with its optimizer and compiled functions: one this
        process compiled for another `Engine` that is gone, if any (`stacks`), else a new
        one. Its previous contents do not matter: `train` loads and resets everything."""
        c = self.cfg
        key = stacks.StackKey(
            self.arch, n, c.batch_size, c.learning_rate, c.adam_epsilon, self.stable, JIT
        )
        self._stack = self._lease.take(key, train_steps)
        self.stack_size = n

    @property
    def model(self) -> StackedMLP | StackedConvNet:
        return self._stack.model

    @property
    def optimizer(self) -> Adam:
        return self._stack.optimizer

    def restack(self, rows: Sequence[int]) -> None:
        """Rebuild the stack from rows `rows` of the current one (order kept), exactly."""
        state = [v.numpy() for v in self._stack.variables]
        step = self.optimizer.iterations.numpy()
        self._build(len(rows))
        for var, value in zip(self._stack.variables, state, strict=True):
            var.assign(value[list(rows)])
        self.optimizer.iterations.assign(step)

    def train_chunk(self, idx: np.ndarray) -> np.ndarray:
        """Train the stack on batch indices (steps, K, B); each network's mean loss."""
        x, y = self.data["train"]
        return np.asarray(self._stack.train_chunk(x, y, tf.constant(idx)).numpy())

    def evaluate(
        self, which: str, rows: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(loss, accuracy) on "val" or "test" of stack rows `rows` (default all), in order:
        one network at a time, by one program per stack (traced once per set's shape)."""
        stack, (x, y) = self._stack, self.data[which]
        if stack.evaluate is None:
            stack.evaluate = stacks.compiled(partial(metrics_one, stack.model), stack.jit)
        pairs = [
            stack.evaluate(x, y, tf.constant(r, tf.int32))
            for r in (range(self.stack_size) if rows is None else rows)
        ]
        loss = np.array([p[0].numpy() for p in pairs], dtype=np.float32)
        return loss, np.array([p[1].numpy() for p in pairs], dtype=np.float32)

    # ------------------------------------------------------------ training

    def train(
        self,
        inits: Sequence[Weights],
        masks: Sequence[Mask],
        seeds: Sequence[int],
        progress: Callable[[str], None] | None = None,
        label: str = "",
        on_evaluation: EvalCallback | None = None,
        to_horizon: Sequence[bool] | None = None,
    ) -> list[NetResult]:
        """Train the K networks from `inits[k] * masks[k]`, data order from `seeds[k]`.

        `to_horizon[k]`: network k trains to `iterations` whatever the patience (its
        weights feed a later round); patience then ends only its evaluations."""
        if not (len(inits) == len(masks) == len(seeds) == self.k):
            raise ValueError(f"need {self.k} inits, masks and seeds")
        if self.stack_size != self.k:
            self._build(self.k)
        self.model.load(inits, masks)
        self.optimizer.reset()  # a fresh optimizer each run (moments, step count)
        horizon = list(to_horizon) if to_horizon is not None else [False] * self.k
        if len(horizon) != self.k:
            raise ValueError(f"need {self.k} to_horizon flags")
        streams = [BatchStream(self.n_train, self.cfg.batch_size, s) for s in seeds]
        run = Run(self, streams, horizon)
        self.timings = run.timings
        run.go(progress or stderr, label, on_evaluation)
        return run.results()


__all__ = [
    "CURVE_KEYS",
    "BatchStream",
    "Engine",
    "NetResult",
    "TrainConfig",
    "device_name",
    "summarise",
]
