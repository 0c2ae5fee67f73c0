"""`lottery bench`: the training engine against plain Keras, measured side by side.

Figures are network-iterations per second (one network trained one iteration, batch 60,
LeNet-300-100), evaluation included as the study does it: every `eval_every` iterations
the engine evaluates every network on the validation (5,000) and test (10,000) sets.

Contenders, all on real MNIST (the prepared split; `lottery.bench.contenders`):
  (a) the engine with K networks stacked in one step (K = 10 and K = 5),
  (b) the engine with K = 1,
  (c) Keras 3 `model.fit` on a Sequential of Dense layers fed by a shuffling batch
      generator, 100 steps per "epoch", validation on 10,000 examples each epoch, and the
      seed notebook's per-batch callback that masks the kernels with `set_weights`,
  (d) the same `fit` without the callback (no masking; density does not matter).
The Keras runs validate on 10,000 examples (the notebook's validation set size; here the
test set stands in), the engine evaluates 15,000: if anything this favours Keras.

Each repeat measures every contender once, in turn (so machine noise hits all of them),
on a window of `window` iterations after a warm-up; the median over repeats is
reported (`lottery.bench.measure`). Also measured: the cost of each training chunk,
validation and test evaluation of an engine window (timed call by call inside the
engine), the start-up cost of a stage (a fresh process, `lottery.bench.startup`), the
Conv-2 line (`lottery.bench.conv`) and the stack line (`lottery.bench.stack`). Derived
(`lottery.bench.derive`, `lottery.bench.estimate`): the FLOPs per network-iteration and
the GFLOP/s each contender sustains, the evaluation share at 5,000- and 50,000-iteration
horizons, and the wall-clock estimate of presets/paper.yaml under its protocol, with a
kept study's measured wall-clock against it where one exists (`lottery.bench.profile`).
Targets are printed PASS/FAIL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lottery.bench import conv as bench_conv
from lottery.bench import derive
from lottery.bench import stack as bench_stack
from lottery.bench.config import PAPER_PRESET, QUICK, BenchConfig, stack_sizes, target
from lottery.bench.contenders import bench_split
from lottery.bench.estimate import UnitCosts, paper_estimate
from lottery.bench.measure import measure, stat
from lottery.bench.profile import (
    StopProfile,
    load_profile,
    measured_wallclock,
    with_study_settled,
)
from lottery.bench.render import render
from lottery.bench.startup import measure_startup
from lottery.core import io, paths
from lottery.core.errors import UserError


def _say(msg: str) -> None:
    print(msg, flush=True)


def stop_profile(lay: paths.Layout) -> StopProfile | None:
    """The settle points that price the paper preset: a kept study's of its protocol, the
    patience evidence's otherwise (which also gives the new minima)."""
    from lottery.analysis.patience import CURVES_FILE
    from lottery.core.params import load_params

    preset = lay.preset_path(PAPER_PRESET)
    patience = load_params(preset).train.patience
    curves = lay.patience_dir() / CURVES_FILE
    profile = load_profile(patience, curves)
    if patience and profile is None:
        raise UserError(
            f"{curves}: not found, and the bench prices the {preset.name} preset's patience "
            f"({patience:,}) from it; restore the patience evidence (`git checkout -- "
            f"{lay.patience_dir().relative_to(lay.root)}`) and run the bench again"
        )
    return with_study_settled(profile, lay.reports / "results", preset)


def run(cfg: BenchConfig, root: Path, log: Callable[[str], None] = _say) -> dict[str, Any]:
    """Measure everything for the project at `root`; return the JSON-ready result."""
    if cfg.window % cfg.eval_every:
        raise ValueError("window must be a multiple of eval_every")
    from lottery.engine.training import device_name

    lay, started, load_start = paths.Layout(root), time.perf_counter(), os.getloadavg()
    profile = stop_profile(lay)  # before any measuring: a missing one is refused at once
    with bench_split(lay) as (split, split_dir, source):
        sizes = split.sizes()
        log(f"data: {source} ({sizes})")
        log("startup: timing a fresh process (imports, data load, compile) ...")
        startup = measure_startup(split_dir, k=cfg.startup_k, steps=cfg.eval_every)
        samples, densities, keras_jit = measure(split, cfg, log)
        log("stack: the stable training step against the batched one, per K ...")
        stack = bench_stack.measure(split, cfg.stack_sizes, cfg.stack_steps, cfg.repeats)
        device = device_name()
    figures = {key: stat(s, samples.net_its[key]) for key, s in samples.seconds.items()}
    rates = {key: f["net_it_per_s"] for key, f in figures.items()}
    ratios = derive.ratios(rates, cfg)
    costs: dict[int, UnitCosts] = {}
    evaluation: dict[str, dict[str, Any]] = {}
    for k in stack_sizes(cfg):
        costs[k], evaluation[f"engine_k{k}"] = derive.engine_evaluation(
            k, samples.parts[f"engine_k{k}"], cfg, profile
        )
    preset = lay.preset_path(PAPER_PRESET)
    measured = measured_wallclock(lay.reports / "results", preset)
    paper = paper_estimate(costs, startup, profile, preset, measured)
    log("Conv-2: K networks stacked against one at a time ...")
    conv = bench_conv.measure(cfg.conv_stacks, cfg.conv_steps, cfg.repeats)
    return {
        "compute": derive.compute(cfg, sizes["val"] + sizes["test"], rates),
        "machine": derive.machine(device, keras_jit, load_start),
        "config": {**asdict(cfg), "densities": densities},
        "data": source,
        "figures": figures,
        "ratios": ratios,
        "evaluation": evaluation,
        "startup": startup,
        "paper_estimate": paper,
        "conv2": conv,
        "stack": stack,
        "targets": derive.targets(ratios, evaluation, startup, paper, cfg.startup_k)
        + [target(n, v, t, False) for n, v, t in bench_stack.targets(stack)],
        "bench_seconds": time.perf_counter() - started,
    }


def main(cfg: BenchConfig, root: Path, out: Path) -> dict[str, Any]:
    """`lottery bench [--quick] [--out PATH]`: run, print, write the JSON atomically."""
    result = run(cfg, root)
    result["quick"] = cfg == QUICK
    _say("")
    _say(render(result))
    io.write_json(out, result)
    _say(f"\nwrote {out}")
    return result
