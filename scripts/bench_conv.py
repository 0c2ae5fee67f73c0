"""Conv-2 bench line: network-iterations per second of the engine's training step with K
networks stacked, against one network at a time (K = 1), measured side by side.

Conv-2 on 32×32×3 images (random pixels: speed does not depend on them), batch 60, every
network with its own random mask at 50% density. Each K gets its own `Engine` (compiled
once, warmed up); then the Ks are timed in turns, `--rounds` times, so that a load change
on the machine hits them all alike; the median of each is reported, and its ratio to K = 1.

    .venv/bin/python scripts/bench_conv.py [--stacks 2 4 8] [--steps 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lottery import arch
from lottery.data import Split
from lottery.masks import Mask
from lottery.model import glorot_normal_init
from lottery.training import Engine, TrainConfig

BATCH = 60
DENSITY = 0.5


def random_split(net: arch.Architecture, n_train: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.integers(0, 256, (n, net.n_inputs), dtype=np.uint8)
        return x, rng.integers(0, net.n_classes, n).astype(np.uint8)

    (xt, yt), (xv, yv), (xs, ys) = part(n_train), part(10), part(10)
    return Split(xt, yt, xv, yv, xs, ys, image_shape=net.input_shape)


def engine_for(split: Split, net: arch.Architecture, k: int) -> Engine:
    engine = Engine(split, k, TrainConfig(iterations=1, batch_size=BATCH), architecture=net)
    rng = np.random.default_rng(k)
    masks: list[Mask] = [
        {name: rng.random(shape) < DENSITY for name, shape in net.kernel_shapes.items()}
        for _ in range(k)
    ]
    inits = [glorot_normal_init(np.random.default_rng([k, i]), net) for i in range(k)]
    engine.model.load(inits, masks)
    return engine


def net_its_per_s(engine: Engine, steps: int, rng: np.random.Generator) -> float:
    """One timed chunk of `steps` training iterations of the whole stack."""
    idx = rng.integers(0, engine.n_train, (steps, engine.k, BATCH)).astype(np.int32)
    start = time.perf_counter()
    engine.train_chunk(idx)
    return steps * engine.k / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, nargs="+", default=[2, 4, 8], help="K > 1")
    parser.add_argument("--steps", type=int, default=3, help="iterations per timed chunk")
    parser.add_argument("--rounds", type=int, default=3, help="timed chunks per K")
    args = parser.parse_args()
    net = arch.build("conv2", (32, 32, 3))
    split = random_split(net, n_train=600)
    ks = [1, *sorted(set(args.stacks) - {1})]
    rng = np.random.default_rng(0)
    engines = {k: engine_for(split, net, k) for k in ks}
    for engine in engines.values():  # compile and warm up outside the timings
        net_its_per_s(engine, 1, rng)
    rates: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(args.rounds):
        for k in ks:
            rates[k].append(net_its_per_s(engines[k], args.steps, rng))
    base = statistics.median(rates[1])
    print(f"Conv-2 on 32x32x3, batch {BATCH}, masks at {DENSITY:.0%} density")
    for k in ks:
        rate = statistics.median(rates[k])
        print(f"  K={k:<2} {rate:7.2f} net-it/s  {rate / base:5.2f}x one network at a time")


if __name__ == "__main__":
    main()
