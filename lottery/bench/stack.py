"""The stack line of `lottery bench`: the engine's stack-stable training step against the
earlier batched one, per stack size K, measured side by side.

Both train LeNet-300-100 on the real split, batch 60. The batched step summed each batch
(the bias gradients, the loss) over the whole (K, B, F) tensor, so XLA blocked those sums,
and rounded them, by K; the stable step (the engine's: `lottery.engine.mlp.StackedMLP` with
`stable=True`) takes every batch sum per network, as a batched GEMM with a ones matrix.
Per K, both engines are compiled and warmed up, then timed in turns, `repeats` times, on
training chunks of `steps` iterations (no evaluation); the medians and their ratio are
reported.
Bits: network 0 (the same θ, mask and batches at every K) is trained 20 iterations in
each stack, and its weights' SHA-256 per K shows which formulation depends on the stack.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from lottery.core import arch
from lottery.core.arch import LENET
from lottery.core.masks import Mask, weights_hash
from lottery.data.split import Split

if TYPE_CHECKING:  # TensorFlow is imported when a measurement runs, not with `render`
    from lottery.engine.training import Engine

BATCH = 60
DENSITY = 0.5
BITS_STEPS = 20
#: Target: the stable step's time per network-iteration against the batched one's.
TARGET_RATIO = 1.1


def engine_for(split: Split, k: int, stable: bool) -> Engine:
    """An engine of K LeNet-300-100 networks with the stable or the batched step."""
    from lottery.engine.training import Engine, TrainConfig

    engine = Engine(split, k, TrainConfig(iterations=1, batch_size=BATCH), LENET, stable=stable)
    masks: list[Mask] = [
        {
            name: np.random.default_rng([5, i]).random(shape) < DENSITY
            for name, shape in arch.LENET.kernel_shapes.items()
        }
        for i in range(k)
    ]
    inits = [arch.glorot_normal_init(np.random.default_rng([6, i]), LENET) for i in range(k)]
    engine.model.load(inits, masks)
    engine.optimizer.reset()
    return engine


def batches(n_train: int, k: int, steps: int, seed: int) -> np.ndarray:
    """(steps, K, B) indices; network 0's are the same whatever K is."""
    idx = np.random.default_rng([seed, k]).integers(0, n_train, (steps, k, BATCH))
    idx[:, 0] = np.random.default_rng(seed).integers(0, n_train, (steps, BATCH))
    return idx.astype(np.int32)


def ms_per_net_iteration(engine: Engine, idx: np.ndarray) -> float:
    """One timed training chunk, in milliseconds per network-iteration."""
    start = time.perf_counter()
    engine.train_chunk(idx)
    return 1000 * (time.perf_counter() - start) / (idx.shape[0] * idx.shape[1])


def network0_hash(split: Split, k: int, stable: bool) -> str:
    """Network 0's weights after BITS_STEPS iterations in a stack of K (SHA-256 prefix)."""
    engine = engine_for(split, k, stable)
    engine.train_chunk(batches(engine.n_train, k, BITS_STEPS, seed=1))
    return weights_hash(engine.model.export()[0], arch=LENET)[:16]


def measure(split: Split, stacks: tuple[int, ...], steps: int, repeats: int) -> dict[str, Any]:
    """Per K: median ms per network-iteration of both steps, their ratio, network 0's hash."""
    forms = {"stable": True, "batched": False}
    engines = {(k, f): engine_for(split, k, s) for k in stacks for f, s in forms.items()}
    for (k, _), engine in engines.items():  # compile and warm up outside the timings
        engine.train_chunk(batches(engine.n_train, k, 2, seed=0))
    samples: dict[tuple[int, str], list[float]] = {key: [] for key in engines}
    for rep in range(repeats):
        for (k, form), engine in engines.items():
            idx = batches(engine.n_train, k, steps, seed=10 + rep)
            samples[(k, form)].append(ms_per_net_iteration(engine, idx))
    ms = {key: statistics.median(s) for key, s in samples.items()}
    return {
        "batch_size": BATCH,
        "density": DENSITY,
        "steps": steps,
        "repeats": repeats,
        "stacks": {
            str(k): {
                "stable_ms": ms[(k, "stable")],
                "batched_ms": ms[(k, "batched")],
                "ratio": ms[(k, "stable")] / ms[(k, "batched")],
                "samples_ms": {f: samples[(k, f)] for f in forms},
                "network0_sha256": {f: network0_hash(split, k, s) for f, s in forms.items()},
            }
            for k in stacks
        },
    }


def targets(stack: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(name, value, threshold) of the stable/batched ratio at every K above 1."""
    return [
        (f"stable step / batched step at K={k}", s["ratio"], TARGET_RATIO)
        for k, s in stack["stacks"].items()
        if int(k) > 1
    ]


def render(stack: dict[str, Any]) -> list[str]:
    """The stack lines of the bench's summary."""
    lines = [
        "",
        f"training step, LeNet-300-100, batch {stack['batch_size']}, {stack['density']:.0%} "
        f"masks, {stack['steps']}-iteration chunks, median of {stack['repeats']}:",
        f"  {'K':>3} {'stable ms/net-it':>17} {'batched ms/net-it':>18} {'ratio':>7}   "
        "network 0 after 20 iterations (stable / batched)",
    ]
    for k, s in stack["stacks"].items():
        h = s["network0_sha256"]
        lines.append(
            f"  {k:>3} {s['stable_ms']:>17.3f} {s['batched_ms']:>18.3f} {s['ratio']:>6.2f}x"
            f"   {h['stable']} / {h['batched']}"
        )
    stable = {s["network0_sha256"]["stable"] for s in stack["stacks"].values()}
    batched = {s["network0_sha256"]["batched"] for s in stack["stacks"].values()}
    lines.append(
        f"  network 0's bits: stable step {len(stable)} distinct hash(es) over the Ks, "
        f"batched step {len(batched)}"
    )
    return lines
