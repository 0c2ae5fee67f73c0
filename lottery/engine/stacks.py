"""Compiled stacks, built once per process and lent to one `Engine` at a time.

A stack is K networks' variables (`mlp.StackedMLP` or `conv.StackedConvNet`), their Adam
optimiser, and the functions compiled for them: the training chunk and the evaluation of
one network (its row an argument). Compiling is most of what a new `Engine` costs: on a
2-core CPU, XLA needs ~4 CPU-seconds for a stack of 1 LeNet, 3.3 for 5 and 3.9 for 16,
against ~0.5, ~2.8 and ~8 to train them 100 iterations and evaluate them twice. XLA's
persistent cache (`compile_cache`) does not help within a process: each trace gets a new
function name, so a new program. So when an `Engine` is gone (or rebuilds its stack as
networks stop), its stack goes back to a pool, and the next `Engine` of the same shapes
and settings (`StackKey`) takes it instead of compiling anew.

A stack is never shared: it is lent to one `Engine` until that `Engine` is collected or
rebuilds its stack (`Lease`). Its previous contents do not matter, as every use starts by
loading weights and masks and resetting the optimiser (`Engine.train`); the data are
arguments of the compiled functions, not part of them. So a network trained on a lent
stack has the bits of one trained on a new stack (tests/engine/test_engine.py).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lottery.core.arch import Architecture
from lottery.engine.conv import XLA as CONV_XLA
from lottery.engine.conv import StackedConvNet
from lottery.engine.mlp import Adam, StackedMLP, tf

#: Free stacks kept for reuse, at most, and at most this many bytes of their variables (the
#: least recently returned go first): 8 stacks of 16 LeNets hold ~0.5 GB; one stack of 8
#: CIFAR Conv-6 networks ~0.3 GB.
KEEP_FREE = 8
KEEP_BYTES = 1 << 30


@dataclass(frozen=True)
class StackKey:
    """Everything a stack's compiled functions depend on, but the data."""

    arch: Architecture
    n_networks: int
    batch_size: int
    learning_rate: float
    adam_epsilon: float
    stable: bool
    jit: bool


@dataclass
class Stack:
    """K networks, their optimiser and their compiled functions (`train_chunk`: training
    images, labels, batch indices (steps, K, B) -> each network's mean loss; `evaluate`,
    once the engine first evaluates: images, labels, row -> that network's loss and
    accuracy)."""

    key: StackKey
    model: StackedMLP | StackedConvNet
    optimizer: Adam
    train_chunk: Any
    jit: bool
    evaluate: Any = None

    @property
    def variables(self) -> list[Any]:
        """Everything that carries its training on, each with one row per network (axis 0):
        kernels, biases, masks and Adam's moments."""
        model = self.model
        layers = model.layers if isinstance(model, StackedConvNet) else model.dense
        return [
            *(v for layer in layers for v in (layer.kernel, layer.bias, layer.mask)),
            *self.optimizer.m,
            *self.optimizer.v,
        ]

    @property
    def nbytes(self) -> int:
        """Bytes of its variables."""
        return sum(v.shape.num_elements() * v.dtype.size for v in self.variables)


def stacked_model(
    n_networks: int, architecture: Architecture, stable: bool = True
) -> StackedMLP | StackedConvNet:
    """K networks of `architecture`: `StackedMLP` for dense ones, `StackedConvNet` for conv
    (always stack-stable; `stable` picks the MLP's formulation, see `mlp.StackedMLP`)."""
    if architecture.layers[0].kind == "conv":
        return StackedConvNet(n_networks, architecture)
    return StackedMLP(n_networks, architecture, stable=stable)


def compiled(fn: Callable[..., Any], jit: bool, signature: list[Any] | None = None) -> Any:
    """`fn` as one TensorFlow graph, compiled with XLA when `jit`. Traced without AutoGraph:
    nothing here branches or loops in Python on a tensor (the training loop is TensorFlow's
    own `while_loop`), and skipping it saves ~1 s of start-up per stage on a 2-core CPU."""
    return tf.function(fn, input_signature=signature, jit_compile=jit, autograph=False)


def build(key: StackKey, train_steps: Callable[..., Any]) -> Stack:
    """A new stack for `key`; `train_steps(model, optimizer, x, y, idx)` is its training
    chunk. XLA compiles MLP stacks (it fuses the step: ~1.5-2x faster on CPU, deterministic
    run to run), not conv stacks unless `conv.XLA` (its CPU convolutions are far slower)."""
    model = stacked_model(key.n_networks, key.arch, key.stable)
    optimizer = Adam(model.trainable, learning_rate=key.learning_rate, epsilon=key.adam_epsilon)
    jit = key.jit and (CONV_XLA or not isinstance(model, StackedConvNet))
    signature = [
        tf.TensorSpec([None, key.arch.n_inputs], tf.uint8),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, key.n_networks, key.batch_size], tf.int32),
    ]
    chunk = compiled(lambda x, y, idx: train_steps(model, optimizer, x, y, idx), jit, signature)
    return Stack(key, model, optimizer, chunk, jit)


class Pool:
    """Free stacks by key; `take` lends one (or builds it), `give` returns it. At most `keep`
    free stacks of `max_bytes` in all are kept, the least recently returned dropped first."""

    def __init__(self, keep: int = KEEP_FREE, max_bytes: int = KEEP_BYTES) -> None:
        self.keep = keep
        self.max_bytes = max_bytes
        self._free: OrderedDict[int, tuple[Stack, int]] = OrderedDict()
        #: Stacks built and stacks lent again, since the process started.
        self.built = 0
        self.reused = 0

    def take(self, key: StackKey, train_steps: Callable[..., Any]) -> Stack:
        for ident, (stack, _) in reversed(self._free.items()):
            if stack.key == key:
                del self._free[ident]
                self.reused += 1
                return stack
        self.built += 1
        return build(key, train_steps)

    def give(self, stack: Stack) -> None:
        self._free[id(stack)] = (stack, stack.nbytes)
        while self._free and (
            len(self._free) > self.keep or sum(n for _, n in self._free.values()) > self.max_bytes
        ):
            self._free.popitem(last=False)


#: The process's pool.
POOL = Pool()


class Lease:
    """The stack one `Engine` holds: `take` returns the one held before (if any) to the
    pool; the holder's collection returns the last one."""

    def __init__(self, holder: object, pool: Pool = POOL) -> None:
        self.pool = pool
        self.stack: Stack | None = None
        weakref.finalize(holder, self.give_back)

    def take(self, key: StackKey, train_steps: Callable[..., Any]) -> Stack:
        self.give_back()
        self.stack = self.pool.take(key, train_steps)
        return self.stack

    def give_back(self) -> None:
        if self.stack is not None:
            self.pool.give(self.stack)
            self.stack = None
