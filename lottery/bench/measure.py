"""The side-by-side measurement of `lottery bench`: every contender warmed up, then timed
window by window in turns, `repeats` times, so that machine noise hits all of them; the
median over repeats is what is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lottery.bench.config import DENSITIES, BenchConfig, stack_sizes
from lottery.bench.contenders import EngineRunner, KerasRunner
from lottery.data.split import Split


def median(xs: list[float]) -> float:
    """The median of measured samples, as a plain float (JSON-ready)."""
    return float(statistics.median(xs))


def stat(samples_s: list[float], net_iterations: int) -> dict[str, Any]:
    """A contender's figure: its median rate in network-iterations per second, and the
    samples it is the median of."""
    rates = [net_iterations / s for s in samples_s]
    return {"net_it_per_s": median(rates), "samples_net_it_per_s": rates, "seconds": samples_s}


@dataclass
class Samples:
    """Every contender's measured windows: seconds, net-iterations per window, and the
    engines' per-part timings."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    net_its: dict[str, int] = field(default_factory=dict)
    parts: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def add(self, key: str, seconds: float, net_its: int) -> None:
        self.seconds.setdefault(key, []).append(seconds)
        self.net_its[key] = net_its


def measure_repeat(
    samples: Samples,
    engines: dict[int, EngineRunner],
    masked: KerasRunner,
    plain: KerasRunner,
    cfg: BenchConfig,
) -> None:
    """One window of every contender, in turn (so machine noise hits all of them)."""
    for k, eng in engines.items():
        for density in DENSITIES:
            samples.add(f"engine_k{k}_{density}", eng.window(density), cfg.window * k)
        samples.parts.setdefault(f"engine_k{k}", []).append(eng.window_split())
    for density in DENSITIES:
        samples.add(f"keras_masked_{density}", masked.window(density), cfg.window)
    samples.add("keras_plain", plain.window("d100"), cfg.window)


def measure(
    split: Split, cfg: BenchConfig, log: Callable[[str], None]
) -> tuple[Samples, dict[str, float], str]:
    """Warm every contender up, then measure `cfg.repeats` rounds of windows; also the
    masks' densities and Keras's jit_compile setting."""
    engines = {k: EngineRunner(split, k, cfg) for k in stack_sizes(cfg)}
    masked = KerasRunner(split, cfg, masked=True)
    plain = KerasRunner(split, cfg, masked=False)
    log("warm-up: compiling every contender ...")
    runners: list[EngineRunner | KerasRunner] = [*engines.values(), masked, plain]
    for runner in runners:
        runner.warm_up()
    samples = Samples()
    for rep in range(cfg.repeats):
        log(f"repeat {rep + 1}/{cfg.repeats}")
        measure_repeat(samples, engines, masked, plain, cfg)
        for key, s in samples.seconds.items():
            log(f"  {key:<20} {samples.net_its[key] / s[-1]:9.1f} net-it/s")
    densities = dict(next(iter(engines.values())).density)
    return samples, densities, str(masked.model.jit_compile)
