"""The Conv-2 line of `lottery bench`: net-it/s of the engine's training step with K conv
networks stacked, against one network at a time (K = 1), measured side by side.

Conv-2 on 32×32×3 images (random pixels: speed does not depend on them), batch 60, every
network with its own random mask at 50% density. Each K gets its own `Engine` (compiled
once, warmed up); then the Ks are timed in turns, `repeats` times, so that a load change
on the machine hits them all alike; the median of each is reported, with its ratio to K = 1.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from lottery.core import arch
from lottery.core.masks import Mask
from lottery.data.split import Split

if TYPE_CHECKING:  # TensorFlow is imported when a measurement runs, not with `render`
    from lottery.engine.training import Engine

BATCH = 60
DENSITY = 0.5
NETWORK, INPUT_SHAPE = "conv2", (32, 32, 3)


def random_split(net: arch.Architecture, n_train: int, seed: int = 0) -> Split:
    """A split of random images and labels in the network's shape (speed ignores them)."""
    rng = np.random.default_rng(seed)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.integers(0, 256, (n, net.n_inputs), dtype=np.uint8)
        return x, rng.integers(0, net.n_classes, n).astype(np.uint8)

    (xt, yt), (xv, yv), (xs, ys) = part(n_train), part(10), part(10)
    return Split(xt, yt, xv, yv, xs, ys, image_shape=net.input_shape)


def engine_for(split: Split, net: arch.Architecture, k: int) -> Engine:
    """An engine of K conv networks, each with its own init and half-density mask."""
    from lottery.engine.training import Engine, TrainConfig

    engine = Engine(split, k, TrainConfig(iterations=1, batch_size=BATCH), arch=net)
    rng = np.random.default_rng(k)
    masks: list[Mask] = [
        {name: rng.random(shape) < DENSITY for name, shape in net.kernel_shapes.items()}
        for _ in range(k)
    ]
    inits = [arch.glorot_normal_init(np.random.default_rng([k, i]), net) for i in range(k)]
    engine.model.load(inits, masks)
    return engine


def net_its_per_s(engine: Engine, steps: int, rng: np.random.Generator) -> float:
    """One timed chunk of `steps` training iterations of the whole stack."""
    idx = rng.integers(0, engine.n_train, (steps, engine.k, BATCH)).astype(np.int32)
    start = time.perf_counter()
    engine.train_chunk(idx)
    return steps * engine.k / (time.perf_counter() - start)


def measure(stacks: tuple[int, ...], steps: int, repeats: int) -> dict[str, Any]:
    """Median net-it/s of K = 1 and each K of `stacks`, and each one's ratio to K = 1."""
    net = arch.build(NETWORK, INPUT_SHAPE)
    split = random_split(net, n_train=600)
    ks = [1, *sorted(set(stacks) - {1})]
    rng = np.random.default_rng(0)
    engines = {k: engine_for(split, net, k) for k in ks}
    for engine in engines.values():  # compile and warm up outside the timings
        net_its_per_s(engine, 1, rng)
    samples: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(repeats):
        for k in ks:
            samples[k].append(net_its_per_s(engines[k], steps, rng))
    rates = {k: statistics.median(s) for k, s in samples.items()}
    return {
        "network": NETWORK,
        "input_shape": list(INPUT_SHAPE),
        "batch_size": BATCH,
        "density": DENSITY,
        "steps": steps,
        "repeats": repeats,
        "net_it_per_s": {str(k): r for k, r in rates.items()},
        "samples": {str(k): s for k, s in samples.items()},
        "vs_one_at_a_time": {str(k): r / rates[1] for k, r in rates.items()},
    }


def render(conv: dict[str, Any]) -> list[str]:
    """The Conv-2 lines of the bench's summary."""
    shape = "x".join(str(d) for d in conv["input_shape"])
    rates, ratios = conv["net_it_per_s"], conv["vs_one_at_a_time"]
    return [
        "",
        f"Conv-2 on {shape}, batch {conv['batch_size']}, masks at {conv['density']:.0%} "
        f"density (training step, median of {conv['repeats']}):",
        *(
            f"  K={k:<2} {rates[k]:7.2f} net-it/s  {ratios[k]:5.2f}x one network at a time"
            for k in rates
        ),
    ]
