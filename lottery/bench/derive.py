"""What `lottery bench` reports besides the raw figures: the speed-up ratios, each engine's
unit costs and evaluation share, the FLOPs per network-iteration and the GFLOP/s each
contender sustains, the machine it ran on, and every target with PASS or FAIL.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import Any

import numpy as np

from lottery.bench.config import (
    DENSITIES,
    HORIZONS,
    TARGET_EVAL_SHARE_50K,
    TARGET_PAPER_H,
    TARGET_SPEEDUP,
    TARGET_STARTUP_S,
    BenchConfig,
    target,
)
from lottery.bench.estimate import UnitCosts, eval_share
from lottery.bench.measure import median
from lottery.bench.profile import StopProfile
from lottery.core.arch import LAYER_SHAPES


def ratios(rates: dict[str, float], cfg: BenchConfig) -> dict[str, dict[str, Any]]:
    """(a)/(c), (a)/(d) and (b)/(c) at each density, with what they divide."""
    out: dict[str, dict[str, Any]] = {}

    def ratio(name: str, num: str, den: str) -> None:
        out[name] = {"value": rates[num] / rates[den], "numerator": num, "denominator": den}

    for d in DENSITIES:
        for k in cfg.stacked:
            ratio(f"a_k{k}_over_c_{d}", f"engine_k{k}_{d}", f"keras_masked_{d}")
            ratio(f"a_k{k}_over_d_{d}", f"engine_k{k}_{d}", "keras_plain")
        ratio(f"b_over_c_{d}", f"engine_k1_{d}", f"keras_masked_{d}")
    return out


def engine_evaluation(
    k: int, parts: list[dict[str, float]], cfg: BenchConfig, profile: StopProfile | None
) -> tuple[UnitCosts, dict[str, Any]]:
    """An engine's unit costs (from its median window) and its evaluation shares."""
    shares = [(p["val_s"] + p["test_s"]) / (p["train_s"] + p["val_s"] + p["test_s"]) for p in parts]
    mid = sorted(parts, key=lambda p: p["train_s"] + p["val_s"] + p["test_s"])[len(parts) // 2]
    costs = UnitCosts.from_timings(k, mid)
    return costs, {
        "train_s": median([p["train_s"] for p in parts]),
        "eval_s": median([p["val_s"] + p["test_s"] for p in parts]),
        "eval_share_every_evaluation": median(shares),
        "samples_eval_share": shares,
        "evaluations_per_window": float(cfg.window // cfg.eval_every),
        "unit_costs": asdict(costs),
        "eval_share_at_horizon": {
            str(h): eval_share(costs, h, cfg.eval_every, te, profile) for h, te in HORIZONS.items()
        },
    }


def targets(
    ratios: dict[str, dict[str, Any]],
    evaluation: dict[str, dict[str, Any]],
    startup: dict[str, float],
    paper: dict[str, Any],
    startup_k: int,
) -> list[dict[str, Any]]:
    """Each target with its measured value and PASS/FAIL."""
    out = [
        target(f"(a)/(c) {name}", r["value"], TARGET_SPEEDUP, True)
        for name, r in ratios.items()
        if name.startswith("a_") and "_over_c_" in name
    ]
    for name, e in evaluation.items():
        share = e["eval_share_at_horizon"]["50000"]
        out.append(
            target(f"evaluation share at 50,000 {name}", share, TARGET_EVAL_SHARE_50K, False)
        )
    out.append(
        target(f"stage startup_s (K={startup_k})", startup["startup_s"], TARGET_STARTUP_S, False)
    )
    out.append(target("paper preset estimate (h)", paper["total_h"], TARGET_PAPER_H, False))
    return out


def flops_per_net_iteration(batch_size: int, n_eval: int, eval_every: int) -> dict[str, float]:
    """FLOPs of one network-iteration of the study (multiply-add = 2), biases ignored.

    forward: 2·B·Σ fan_in·fan_out; backward: the kernels' gradients (as much again) plus
    the activations' gradients of every layer but the first (the input needs none);
    evaluation: the forward pass on `n_eval` examples every `eval_every` iterations.
    """
    macs = [fan_in * fan_out for fan_in, fan_out in LAYER_SHAPES.values()]
    forward = 2.0 * batch_size * sum(macs)
    backward = forward + 2.0 * batch_size * sum(macs[1:])
    evaluation = 2.0 * n_eval * sum(macs) / eval_every
    return {
        "forward": forward,
        "backward": backward,
        "training": forward + backward,
        "evaluation": evaluation,
        "total": forward + backward + evaluation,
    }


def compute(cfg: BenchConfig, n_eval: int, rates: dict[str, float]) -> dict[str, Any]:
    """FLOPs per network-iteration and the GFLOP/s each 100%-density contender sustains."""
    flops = flops_per_net_iteration(cfg.batch_size, n_eval, cfg.eval_every)
    return {
        "flops_per_net_iteration": flops,
        "gflops_per_s": {
            key: rate * flops["total"] / 1e9 for key, rate in rates.items() if "d100" in key
        },
        #: What (a) would have to sustain to be TARGET_SPEEDUP x (c) at 100% density.
        "gflops_per_s_for_target": TARGET_SPEEDUP
        * rates["keras_masked_d100"]
        * flops["total"]
        / 1e9,
    }


def machine(device: str, keras_jit: str, load_start: tuple[float, ...]) -> dict[str, Any]:
    """The machine and libraries the figures were measured with, and its load."""
    from lottery.core.machine import describe, threads
    from lottery.engine.training import JIT

    return {
        "platform": platform.platform(),
        "cpu": describe(),
        "threads": threads(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "engine_jit": JIT,
        "keras_jit_compile": keras_jit,
        "versions": _versions(),
        "loadavg_start": list(load_start),
        "loadavg_end": list(os.getloadavg()),
        "note": "shared machine: absolute figures are noisy; ratios are measured side by side",
    }


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}
