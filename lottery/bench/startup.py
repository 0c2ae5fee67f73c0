"""The start-up cost of a training stage, timed in a fresh process: the interpreter, the
imports a stage needs, the data load, the engine build and the first compiled chunk and
evaluations.

`measure_startup` (in the bench) launches this module as the probe:

    python -m lottery.bench.startup SPLIT_DIR K STEPS

which prints one line, `STARTUP {json}`, with the wall-clock time at each milestone. The
probe imports only the standard library at module level: the imports it times happen after
its first clock reading.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: What a training stage imports: the engine and data, the stage module, and the MLflow
#: recorder every stage records its runs with.
STAGE_MODULES = (
    "lottery.engine.training",
    "lottery.data.split",
    "lottery.study.train",
    "lottery.tracking.recorder",
    "numpy",
)
PREFIX = "STARTUP "
#: This module, as `python -m` runs it.
MODULE = "lottery.bench.startup"


def probe(split_dir: str, k: int, steps: int) -> dict[str, float]:
    """The wall-clock time (`time.time()`) at each milestone of a stage's start, in order:
    start, imports, data, build, first and second training chunk, first and second pair of
    evaluations (validation and test)."""
    t_start = time.time()
    modules = [importlib.import_module(name) for name in STAGE_MODULES]
    training, split, np = modules[0], modules[1], modules[-1]
    t_import = time.time()
    from lottery.core.arch import LENET  # loaded with the engine above

    data = split.load_split(split_dir)
    t_data = time.time()
    engine = training.Engine(
        data, k, training.TrainConfig(iterations=steps, eval_every=steps), LENET
    )
    t_build = time.time()
    streams = [training.BatchStream(engine.n_train, 60, s) for s in range(k)]

    def chunk() -> None:
        engine.train_chunk(np.stack([s.take(steps) for s in streams], axis=1))

    def evaluate() -> None:
        engine.evaluate("val")
        engine.evaluate("test")

    chunk()
    t_first = time.time()
    chunk()
    t_second = time.time()
    evaluate()
    t_eval1 = time.time()
    evaluate()
    return {
        "start": t_start,
        "imports": t_import,
        "data": t_data,
        "build": t_build,
        "first": t_first,
        "second": t_second,
        "eval1": t_eval1,
        "eval2": time.time(),
    }


def measure_startup(split_dir: Path, k: int, steps: int) -> dict[str, float]:
    """Time a fresh process: imports, data load, engine build, first compiled chunk. Twice,
    on one new XLA compilation cache (`lottery.engine.compile_cache`): the first process
    compiles its programs (the figures without `_cached`), the second loads them (the
    `_cached` figures: what every later stage of the same shapes pays)."""
    with tempfile.TemporaryDirectory(prefix="lottery-bench-xla-") as cache:
        cold = _probe_process(split_dir, k, steps, cache)
        warm = _probe_process(split_dir, k, steps, cache)
    cached = ("startup_s", "compile_train_s", "compile_eval_s", "stage_overhead_s")
    return cold | {f"{name.removesuffix('_s')}_cached_s": warm[name] for name in cached}


def _probe_process(split_dir: Path, k: int, steps: int, cache: str) -> dict[str, float]:
    launched = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, str(split_dir), str(k), str(steps)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "LOTTERY_XLA_CACHE": cache},
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(PREFIX))
    return startup_costs(json.loads(line.removeprefix(PREFIX)), launched, k, steps)


def startup_costs(t: dict[str, Any], launched: float, k: int, steps: int) -> dict[str, float]:
    """The probe's milestones as costs: each part's seconds, and the compiles (a first call
    less a second one)."""
    chunk = t["second"] - t["first"]
    evaluation = t["eval2"] - t["eval1"]
    compile_eval = max(t["eval1"] - t["second"] - evaluation, 0.0)
    return {
        "interpreter_s": t["start"] - launched,
        "imports_s": t["imports"] - t["start"],
        "data_load_s": t["data"] - t["imports"],
        "engine_build_s": t["build"] - t["data"],
        "first_chunk_s": t["first"] - t["build"],
        "chunk_s": chunk,
        "compile_train_s": max(t["first"] - t["build"] - chunk, 0.0),
        "first_eval_s": t["eval1"] - t["second"],
        "eval_s": evaluation,
        "compile_eval_s": compile_eval,
        #: process start -> first training chunk done (the target's definition).
        "startup_s": t["first"] - launched,
        #: ... plus the first evaluation's compile: the fixed cost of a stage.
        "stage_overhead_s": t["first"] - launched + compile_eval,
        "k": float(k),
        "chunk_iterations": float(steps),
    }


if __name__ == "__main__":
    split_dir, k, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(PREFIX + json.dumps(probe(split_dir, k, steps)), flush=True)
