"""`lottery bench`: the training engine against plain Keras, measured side by side.

Figures are network-iterations per second (one network trained one iteration, batch 60,
LeNet-300-100), evaluation included as the study does it: every `eval_every` iterations
the engine evaluates every network on the validation (5,000) and test (10,000) sets.

Contenders, all on real MNIST (the prepared split):
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
reported. Also measured: the cost of each training chunk, validation and test
evaluation of an engine window (timed call by call inside the engine), the startup cost
of a stage (a fresh process: imports, data load, engine build, XLA compiles), the FLOPs
per network-iteration and the GFLOP/s each contender sustains. From the unit costs and
the stopping profile of the committed patience evidence (`reports/patience`, see
`lottery.patience`): the evaluation share at 5,000- and 50,000-iteration horizons (the
test set evaluated only where a number needs it) and the wall-clock estimate of
presets/paper.yaml at its patience. Targets are printed PASS/FAIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lottery.bench import conv as bench_conv
from lottery.bench import stack as bench_stack
from lottery.core import io, paths
from lottery.core.arch import LAYER_SHAPES, LAYERS
from lottery.core.datasets import DataError
from lottery.core.masks import Mask, Weights
from lottery.data.load import Split, load_split, prepare

#: Targets: stacked engine / notebook-way Keras; stage startup.
TARGET_SPEEDUP = 20.0
TARGET_STARTUP_S = 15.0

#: Issue 14's targets: evaluation share at the paper's horizon, paper preset wall-clock.
TARGET_EVAL_SHARE_50K = 0.15
TARGET_PAPER_H = 3.0
#: The preset the estimate prices (presets/paper.yaml), priced with the patience
#: evidence committed under reports/patience.
PAPER_PRESET = "paper"
#: Horizons whose evaluation share is reported (the default study's, the paper's), each
#: with the test_every of its params file.
HORIZONS = {5_000: 500, 50_000: 5_000}

#: Density of the "~20%" networks: round 7 of the paper's rates (0.8^7 hidden, 0.9^7 out).
SPARSE_DENSITY = {"fc1": 0.8**7, "fc2": 0.8**7, "out": 0.9**7}


@dataclass(frozen=True)
class BenchConfig:
    window: int  # iterations per measured window (per network)
    eval_every: int  # evaluate every N iterations (the paper: 100)
    repeats: int  # measured windows per contender; the median is reported
    stacked: tuple[int, ...]  # K of the stacked engine runs (a)
    batch_size: int = 60
    learning_rate: float = 1.2e-3
    keras_val_size: int = 10_000  # the notebook's validation set size
    startup_k: int = 5  # K of the fresh process whose start-up is timed
    conv_stacks: tuple[int, ...] = (2,)  # K of the Conv-2 line, besides K = 1
    conv_steps: int = 1  # training iterations per timed Conv-2 chunk
    stack_sizes: tuple[int, ...] = (1, 5, 15)  # K of the stable-vs-batched step line
    stack_steps: int = 20  # training iterations per timed chunk of that line


FULL = BenchConfig(
    window=300,
    eval_every=100,
    repeats=3,
    stacked=(10, 5),
    conv_stacks=(2, 4, 8),
    conv_steps=3,
    stack_steps=200,
)
QUICK = BenchConfig(
    window=10, eval_every=10, repeats=1, stacked=(10, 5), stack_sizes=(1, 2), stack_steps=5
)

DENSITIES = {"d100": None, "d20": SPARSE_DENSITY}


def _say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- data


@contextlib.contextmanager
def bench_split(lay: paths.Layout) -> Iterator[tuple[Split, Path, str]]:
    """The project's prepared split if present and valid, else one prepared in a temp dir."""
    try:
        split = load_split(lay.prepared_dir())
    except DataError:
        pass
    else:
        yield split, lay.prepared_dir(), str(paths.prepared_dir())
        return
    with tempfile.TemporaryDirectory(prefix="lottery-bench-") as tmp:
        out = Path(tmp) / "data"
        prepare(lay.mnist_dir, out, validation_size=5000, stratified=True, seed=0)
        yield load_split(out), out, "prepared in a temporary directory (5,000 validation)"


def _masks(k: int, density: dict[str, float] | None, seed: int) -> list[Mask]:
    rng = np.random.default_rng(seed)
    out: list[Mask] = []
    for _ in range(k):
        mask: Mask = {}
        for layer in LAYERS:
            shape = LAYER_SHAPES[layer]
            mask[layer] = (
                np.ones(shape, dtype=bool)
                if density is None
                else rng.random(shape) < density[layer]
            )
        out.append(mask)
    return out


def _inits(k: int, seed: int) -> list[Weights]:
    from lottery.core.arch import glorot_normal_init

    return [glorot_normal_init(np.random.default_rng([seed, i])) for i in range(k)]


def _overall_density(mask: Mask) -> float:
    return float(sum(m.sum() for m in mask.values()) / sum(m.size for m in mask.values()))


# --------------------------------------------------------------------------- contenders


class EngineRunner:
    """The project's engine with K stacked networks, as a stage uses it (`Engine.train`)."""

    def __init__(self, split: Split, k: int, cfg: BenchConfig) -> None:
        from lottery.engine.training import Engine, TrainConfig

        self.k = k
        self.cfg = cfg
        # The test set evaluated at every evaluation: the per-call costs of both sets.
        self.engine = Engine(
            split,
            k,
            TrainConfig(
                cfg.window,
                cfg.batch_size,
                cfg.learning_rate,
                cfg.eval_every,
                test_every=cfg.eval_every,
            ),
        )
        self.inits = _inits(k, seed=1)
        self.seeds = list(range(k))
        self.masks = {name: _masks(k, d, seed=2) for name, d in DENSITIES.items()}
        self.density = {name: _overall_density(m[0]) for name, m in self.masks.items()}

    def warm_up(self) -> None:
        """Compile the train chunk and both evaluations."""
        self.window("d100")

    def window(self, density: str) -> float:
        """Seconds for one `Engine.train` call of `window` iterations (evaluation included)."""
        start = time.perf_counter()
        self.engine.train(self.inits, self.masks[density], self.seeds, progress=lambda _: None)
        return time.perf_counter() - start

    def window_split(self) -> dict[str, float]:
        """Seconds of one 100%-density window by part (train, val, test), timed call by
        call inside the engine, and the number of evaluations."""
        self.window("d100")
        return dict(self.engine.timings)


class NotebookMask:
    """The seed notebook's callback: after every batch, `set_weights(kernel * mask)`."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                for layer, mask in zip(self.model.layers, masks, strict=True):
                    kernel, bias = layer.get_weights()
                    layer.set_weights([kernel * mask, bias])

        self.callback = _Callback()


class KerasRunner:
    """Plain Keras 3 `fit` (the notebook's way), optionally with the masking callback."""

    def __init__(self, split: Split, cfg: BenchConfig, masked: bool) -> None:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras

        self.cfg = cfg
        self.masked = masked
        self.x = split.x_train
        self.y = split.y_train
        n_val = min(cfg.keras_val_size, split.x_test.shape[0])
        self.val = (split.x_test[:n_val].astype(np.float32) / 255.0, split.y_test[:n_val])
        self.model = keras.Sequential(
            [
                keras.Input((self.x.shape[1],)),
                keras.layers.Dense(300, activation="relu", kernel_initializer="glorot_normal"),
                keras.layers.Dense(100, activation="relu", kernel_initializer="glorot_normal"),
                keras.layers.Dense(10, activation="softmax", kernel_initializer="glorot_normal"),
            ]
        )
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        self.masks = {
            name: [m[layer].astype(np.float32) for layer in LAYERS]
            for name, (m,) in ((n, _masks(1, d, seed=2)) for n, d in DENSITIES.items())
        }
        self.rng = np.random.default_rng(3)

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The notebook's shuffling batch generator (endless epochs of permutations)."""
        b = self.cfg.batch_size
        while True:
            perm = self.rng.permutation(self.x.shape[0])
            for i in range(0, perm.size - b + 1, b):
                j = perm[i : i + b]
                yield self.x[j].astype(np.float32) / 255.0, self.y[j]

    def _fit(self, iterations: int, density: str) -> None:
        callbacks = [NotebookMask(self.masks[density]).callback] if self.masked else []
        self.model.fit(
            self._batches(),
            steps_per_epoch=self.cfg.eval_every,
            epochs=max(1, iterations // self.cfg.eval_every),
            validation_data=self.val,
            callbacks=callbacks,
            verbose=0,
        )

    def warm_up(self) -> None:
        self._fit(self.cfg.eval_every, "d100")

    def window(self, density: str) -> float:
        start = time.perf_counter()
        self._fit(self.cfg.window, density)
        return time.perf_counter() - start


# --------------------------------------------------------------------------- startup

_STARTUP_SCRIPT = r"""
import json, sys, time
t_start = time.time()
from lottery.engine.training import BatchStream, Engine, TrainConfig
from lottery.data.load import load_split
from lottery.study import train
from lottery.tracking import store  # everything else a training stage imports (MLflow
import numpy as np
t_import = time.time()
split = load_split(sys.argv[1])
t_data = time.time()
k, steps = int(sys.argv[2]), int(sys.argv[3])
engine = Engine(split, k, TrainConfig(iterations=steps, eval_every=steps))
t_build = time.time()
streams = [BatchStream(engine.n_train, 60, s) for s in range(k)]
def chunk():
    engine.train_chunk(np.stack([s.take(steps) for s in streams], axis=1))
chunk()
t_first = time.time()
chunk()
t_second = time.time()
engine.evaluate("val"); engine.evaluate("test")
t_eval1 = time.time()
engine.evaluate("val"); engine.evaluate("test")
t_eval2 = time.time()
print("STARTUP " + json.dumps(dict(start=t_start, imports=t_import, data=t_data,
      build=t_build, first=t_first, second=t_second, eval1=t_eval1, eval2=t_eval2)))
"""


def measure_startup(split_dir: Path, k: int, steps: int) -> dict[str, float]:
    """Time a fresh process: imports, data load, engine build, first compiled chunk."""
    launched = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", _STARTUP_SCRIPT, str(split_dir), str(k), str(steps)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP "))
    t = json.loads(line.removeprefix("STARTUP "))
    chunk = t["second"] - t["first"]
    evaluation = t["eval2"] - t["eval1"]
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
        "compile_eval_s": max(t["eval1"] - t["second"] - evaluation, 0.0),
        #: process start -> first training chunk done (the target's definition).
        "startup_s": t["first"] - launched,
        #: ... plus the first evaluation's compile: the fixed cost of a stage.
        "stage_overhead_s": t["first"] - launched + max(t["eval1"] - t["second"] - evaluation, 0),
        "k": float(k),
        "chunk_iterations": float(steps),
    }


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


# --------------------------------------------------------------------------- run


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _stat(samples_s: list[float], net_iterations: int) -> dict[str, Any]:
    rates = [net_iterations / s for s in samples_s]
    return {"net_it_per_s": _median(rates), "samples_net_it_per_s": rates, "seconds": samples_s}


@dataclass(frozen=True)
class UnitCosts:
    """Seconds per call for a stack of K networks, from one timed engine window."""

    k: int
    chunk_s: float  # one training chunk of eval_every iterations
    val_s: float  # one validation evaluation
    test_s: float  # one test evaluation

    @classmethod
    def from_timings(cls, k: int, t: dict[str, float]) -> UnitCosts:
        return cls(
            k,
            t["train_s"] / t["evaluations"],
            t["val_s"] / t["evaluations"],
            t["test_s"] / max(t["test_evaluations"], 1),
        )

    def scaled(self, k: int) -> UnitCosts:
        """A larger stack priced per network at this one's cost."""
        f = k / self.k
        return UnitCosts(k, self.chunk_s * f, self.val_s * f, self.test_s * f)


@dataclass(frozen=True)
class StopProfile:
    """What the patience evidence measured, replayed at one patience: per condition and
    round the fraction of the horizon each network trains, and per network the
    iterations where its validation loss reached a new minimum before it stopped (where
    the engine evaluates the test set)."""

    source: str
    patience: int
    fractions: dict[str, dict[int, list[float]]]
    minima: list[list[int]]  # per evidence run, in the evidence's order

    def fraction(self, condition: str, rnd: int) -> list[float]:
        rounds = self.fractions.get(condition) or self.fractions["ticket"]
        nearest = min(rounds, key=lambda r: (abs(r - rnd), r))
        return rounds[nearest]


def load_profile(patience: int, path: Path) -> StopProfile | None:
    """The stopping profile of the committed patience evidence, or None without it."""
    if not path.is_file():
        return None
    from lottery.analysis.patience import from_file, new_minima, outcome

    fractions: dict[str, dict[int, list[float]]] = {}
    minima: list[list[int]] = []
    for c in from_file(path):
        o = outcome(c, patience)
        fractions.setdefault(c.condition, {}).setdefault(c.round, []).append(
            o.stop_iteration / c.horizon
        )
        minima.append(new_minima(c, until=o.stop_iteration))
    return StopProfile(str(path), patience, fractions, minima)


def _same_protocol(result_params: Path, preset: Path) -> bool:
    """A committed result ran the preset's training protocol: the same `train` section,
    pruning point, dataset and network (a params file without `model`/`data.dataset`
    predates them and ran LeNet-300-100 on MNIST; one without `prune.point` pruned where
    patience stopped, which is neither point)."""
    from lottery.core.params import network_and_dataset, read_yaml

    def protocol(path: Path) -> tuple[Any, ...]:
        raw = read_yaml(path.read_text())
        point = dict(raw.get("prune") or {}).get("point", "stop")
        return dict(raw["train"]), point, *network_and_dataset(raw)

    return bool(protocol(result_params) == protocol(preset))


def result_fractions(results: Path, preset: Path) -> tuple[str, dict[str, dict[int, list[float]]]]:
    """Per condition and round, the fraction of the horizon each network of a committed
    study of the preset's protocol trained (its measured `stop_iteration`s); ("", {})
    when no committed result ran that protocol."""
    for params in sorted(results.glob("*/params.yaml")):
        if not _same_protocol(params, preset):
            continue
        fractions: dict[str, dict[int, list[float]]] = {}
        for f in sorted(params.parent.glob("metrics/*/r*.json")):
            m = io.read_json(f)
            runs = [r["stop_iteration"] / m["iterations"] for r in m["runs"].values()]
            fractions.setdefault(m["condition"], {})[int(m["round"])] = runs
        if fractions:
            return str(params.parent), fractions
    return "", {}


def with_result_fractions(
    profile: StopProfile | None, results: Path, preset: Path
) -> StopProfile | None:
    """The evidence's profile with its per-round fractions replaced by those a committed
    study of the preset measured at every round (the evidence has controls at three
    rounds only); the evidence still gives the new minima where the test set is
    evaluated."""
    source, fractions = result_fractions(results, preset)
    if profile is None or not fractions:
        return profile
    return StopProfile(
        f"{source} (stops), {profile.source} (new minima)",
        profile.patience,
        fractions,
        profile.minima,
    )


def test_evaluations(
    horizon: int, eval_every: int, test_every: int, k: int, profile: StopProfile | None
) -> float:
    """Test evaluations of a stack of K over `horizon`: the union of the test_every grid,
    the horizon and its networks' new minima, measured on stacks of K evidence runs (in
    the evidence's order); every evaluation without evidence."""
    n_eval = horizon / eval_every
    if profile is None or not profile.minima:
        return n_eval
    grid = set(range(test_every, horizon + 1, test_every)) | {horizon}
    runs = profile.minima
    k = max(1, min(k, len(runs)))
    stacks = [runs[i : i + k] for i in range(0, len(runs) - k + 1, k)]
    sizes = [len(grid | {it for run in s for it in run if it <= horizon}) for s in stacks]
    return min(n_eval, sum(sizes) / len(sizes))


def eval_share(
    cost: UnitCosts, horizon: int, eval_every: int, test_every: int, profile: StopProfile | None
) -> float:
    n_eval = horizon / eval_every
    n_test = test_evaluations(horizon, eval_every, test_every, cost.k, profile)
    evaluation = n_eval * cost.val_s + n_test * cost.test_s
    return evaluation / (n_eval * cost.chunk_s + evaluation)


def _plan(p: Any) -> dict[str, tuple[int, list[int]]]:
    """The stages of a study, by condition: its stack size K and its rounds."""
    control_rounds = list(range(1, p.study.rounds + 1))
    if p.controls.rounds != "all":
        control_rounds = list(p.controls.rounds)
    plan = {"ticket": (p.study.trials, list(range(p.study.rounds + 1)))}
    if p.controls.reinit:
        plan["reinit"] = (p.study.trials * p.controls.reinit_repeats, control_rounds)
    if p.controls.random:
        plan["random"] = (p.study.trials, control_rounds)
    return plan


def _stage_seconds(
    train: Any,
    cost: UnitCosts,
    cond: str,
    rnd: int,
    profile: StopProfile | None,
    startup: dict[str, float],
) -> float:
    """One stage of a stack of `cost.k` networks: start-up, training and validation of
    the iterations each trains, test evaluations, and the recompiles of its rebuilds."""
    k, h = cost.k, train.iterations
    per_net_chunk = (cost.chunk_s + cost.val_s) / k
    fracs = profile.fraction(cond, rnd) if (profile and train.patience) else [1.0]
    mean, top = sum(fracs) / len(fracs), max(fracs)
    chunks = h / train.eval_every
    trained = per_net_chunk * chunks * (k * mean + (top - mean if train.patience else 0))
    n_test = test_evaluations(h, train.eval_every, train.test_every, k, profile)
    rebuilds = max(k - 2, 0) if train.patience else 0
    recompile = startup["compile_train_s"] + 2 * startup["compile_eval_s"]
    return startup["stage_overhead_s"] + trained + n_test * cost.test_s + rebuilds * recompile


def paper_estimate(
    costs: dict[int, UnitCosts],
    startup: dict[str, float],
    profile: StopProfile | None,
    preset: Path,
) -> dict[str, Any]:
    """Wall-clock of the paper preset, stages run one after another (`dvc repro`).

    Per stage: the start-up (imports, data, build, compiles) + the training and
    validation of the iterations each network trains (the measured stopping profile at
    the preset's patience; all of them with patience 0) + the test evaluations + one
    recompile per rebuilt stack. A stack is priced at its starting K's per-network cost
    (K = 15 at K = 10's), and its last network at twice its cost (the ballast row).
    """
    from lottery.core.params import load_params

    p = load_params(preset)
    t = p.train
    if t.patience and profile is None:
        raise ValueError("pricing a patience needs the patience evidence (reports/patience)")
    conditions: dict[str, Any] = {}
    for cond, (k, rounds) in _plan(p).items():
        base = costs[max(c for c in costs if c <= k)]
        cost = base.scaled(k) if k != base.k else base
        seconds = sum(_stage_seconds(t, cost, cond, rnd, profile, startup) for rnd in rounds)
        conditions[cond] = {
            "stages": len(rounds),
            "k": k,
            "total_s": seconds,
            "mean_stage_s": seconds / len(rounds),
        }
    total = sum(c["total_s"] for c in conditions.values())
    return {
        "preset": str(preset.name),
        "patience": t.patience,
        "test_every": t.test_every,
        "iterations": t.iterations,
        "profile": profile.source if profile else None,
        "conditions": conditions,
        "total_s": total,
        "total_h": total / 3600,
        "assumptions": (
            "stages run sequentially; stops as measured by a committed study of the preset "
            "where one exists, else the patience evidence's (nearest measured round for "
            "controls); K=15 at the K=10 per-network cost; MLflow/DVC bookkeeping not included"
        ),
    }


# --------------------------------------------------------------------------- measuring


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


def _stack_sizes(cfg: BenchConfig) -> list[int]:
    """K of the engine runs: the stacked ones (a), then K = 1 (b)."""
    return list(dict.fromkeys((*cfg.stacked, 1)))


def _measure_repeat(
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


def _measure(
    split: Split, cfg: BenchConfig, log: Callable[[str], None]
) -> tuple[Samples, dict[str, float], str]:
    """Warm every contender up, then measure `cfg.repeats` rounds of windows; also the
    masks' densities and Keras's jit_compile setting."""
    engines = {k: EngineRunner(split, k, cfg) for k in _stack_sizes(cfg)}
    masked = KerasRunner(split, cfg, masked=True)
    plain = KerasRunner(split, cfg, masked=False)
    log("warm-up: compiling every contender ...")
    runners: list[EngineRunner | KerasRunner] = [*engines.values(), masked, plain]
    for runner in runners:
        runner.warm_up()
    samples = Samples()
    for rep in range(cfg.repeats):
        log(f"repeat {rep + 1}/{cfg.repeats}")
        _measure_repeat(samples, engines, masked, plain, cfg)
        for key, s in samples.seconds.items():
            log(f"  {key:<20} {samples.net_its[key] / s[-1]:9.1f} net-it/s")
    densities = dict(next(iter(engines.values())).density)
    return samples, densities, str(masked.model.jit_compile)


# --------------------------------------------------------------------------- deriving


def _ratios(rates: dict[str, float], cfg: BenchConfig) -> dict[str, dict[str, Any]]:
    """(a)/(c), (a)/(d) and (b)/(c) at each density, with what they divide."""
    ratios: dict[str, dict[str, Any]] = {}

    def ratio(name: str, num: str, den: str) -> None:
        ratios[name] = {"value": rates[num] / rates[den], "numerator": num, "denominator": den}

    for d in DENSITIES:
        for k in cfg.stacked:
            ratio(f"a_k{k}_over_c_{d}", f"engine_k{k}_{d}", f"keras_masked_{d}")
            ratio(f"a_k{k}_over_d_{d}", f"engine_k{k}_{d}", "keras_plain")
        ratio(f"b_over_c_{d}", f"engine_k1_{d}", f"keras_masked_{d}")
    return ratios


def _engine_evaluation(
    k: int, parts: list[dict[str, float]], cfg: BenchConfig, profile: StopProfile | None
) -> tuple[UnitCosts, dict[str, Any]]:
    """An engine's unit costs (from its median window) and its evaluation shares."""
    shares = [(p["val_s"] + p["test_s"]) / (p["train_s"] + p["val_s"] + p["test_s"]) for p in parts]
    mid = sorted(parts, key=lambda p: p["train_s"] + p["val_s"] + p["test_s"])[len(parts) // 2]
    costs = UnitCosts.from_timings(k, mid)
    return costs, {
        "train_s": _median([p["train_s"] for p in parts]),
        "eval_s": _median([p["val_s"] + p["test_s"] for p in parts]),
        "eval_share_every_evaluation": _median(shares),
        "samples_eval_share": shares,
        "evaluations_per_window": float(cfg.window // cfg.eval_every),
        "unit_costs": asdict(costs),
        "eval_share_at_horizon": {
            str(h): eval_share(costs, h, cfg.eval_every, te, profile) for h, te in HORIZONS.items()
        },
    }


def _target(name: str, value: float, threshold: float, higher_is_better: bool) -> dict[str, Any]:
    ok = value >= threshold if higher_is_better else value <= threshold
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "direction": ">=" if higher_is_better else "<=",
        "pass": ok,
    }


def _targets(
    ratios: dict[str, dict[str, Any]],
    evaluation: dict[str, dict[str, Any]],
    startup: dict[str, float],
    paper: dict[str, Any],
    startup_k: int,
) -> list[dict[str, Any]]:
    """Each target with its measured value and PASS/FAIL."""
    targets = [
        _target(f"(a)/(c) {name}", r["value"], TARGET_SPEEDUP, True)
        for name, r in ratios.items()
        if name.startswith("a_") and "_over_c_" in name
    ]
    for name, e in evaluation.items():
        share = e["eval_share_at_horizon"]["50000"]
        targets.append(
            _target(f"evaluation share at 50,000 {name}", share, TARGET_EVAL_SHARE_50K, False)
        )
    targets.append(
        _target(f"stage startup_s (K={startup_k})", startup["startup_s"], TARGET_STARTUP_S, False)
    )
    targets.append(_target("paper preset estimate (h)", paper["total_h"], TARGET_PAPER_H, False))
    return targets


def _compute(cfg: BenchConfig, n_eval: int, rates: dict[str, float]) -> dict[str, Any]:
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


def _machine(device: str, keras_jit: str, load_start: tuple[float, ...]) -> dict[str, Any]:
    from lottery.engine.training import JIT

    return {
        "platform": platform.platform(),
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


# --------------------------------------------------------------------------- run


def run(cfg: BenchConfig, root: Path, log: Callable[[str], None] = _say) -> dict[str, Any]:
    """Measure everything for the project at `root`; return the JSON-ready result."""
    if cfg.window % cfg.eval_every:
        raise ValueError("window must be a multiple of eval_every")
    from lottery.analysis.patience import CURVES_FILE
    from lottery.core.params import load_params
    from lottery.engine.training import device_name

    lay, started, load_start = paths.Layout(root), time.perf_counter(), os.getloadavg()
    with bench_split(lay) as (split, split_dir, source):
        sizes = split.sizes()
        log(f"data: {source} ({sizes})")
        log("startup: timing a fresh process (imports, data load, compile) ...")
        startup = measure_startup(split_dir, k=cfg.startup_k, steps=cfg.eval_every)
        samples, densities, keras_jit = _measure(split, cfg, log)
        log("stack: the stable training step against the batched one, per K ...")
        stack = bench_stack.measure(split, cfg.stack_sizes, cfg.stack_steps, cfg.repeats)
        device = device_name()
    figures = {key: _stat(s, samples.net_its[key]) for key, s in samples.seconds.items()}
    rates = {key: f["net_it_per_s"] for key, f in figures.items()}
    ratios = _ratios(rates, cfg)
    preset = lay.preset_path(PAPER_PRESET)
    profile = load_profile(load_params(preset).train.patience, lay.patience_dir() / CURVES_FILE)
    profile = with_result_fractions(profile, lay.reports / "results", preset)
    costs: dict[int, UnitCosts] = {}
    evaluation: dict[str, dict[str, Any]] = {}
    for k in _stack_sizes(cfg):
        costs[k], evaluation[f"engine_k{k}"] = _engine_evaluation(
            k, samples.parts[f"engine_k{k}"], cfg, profile
        )
    paper = paper_estimate(costs, startup, profile, preset)
    log("Conv-2: K networks stacked against one at a time ...")
    conv = bench_conv.measure(cfg.conv_stacks, cfg.conv_steps, cfg.repeats)
    return {
        "compute": _compute(cfg, sizes["val"] + sizes["test"], rates),
        "machine": _machine(device, keras_jit, load_start),
        "config": {**asdict(cfg), "densities": densities},
        "data": source,
        "figures": figures,
        "ratios": ratios,
        "evaluation": evaluation,
        "startup": startup,
        "paper_estimate": paper,
        "conv2": conv,
        "stack": stack,
        "targets": _targets(ratios, evaluation, startup, paper, cfg.startup_k)
        + [_target(n, v, t, False) for n, v, t in bench_stack.targets(stack)],
        "bench_seconds": time.perf_counter() - started,
    }


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


# --------------------------------------------------------------------------- render


def _render_figures(result: dict[str, Any]) -> list[str]:
    cfg, m = result["config"], result["machine"]
    lines = [
        f"LeNet-300-100, batch {cfg['batch_size']}, {cfg['window']}-iteration windows, "
        f"evaluation every {cfg['eval_every']}, median of {cfg['repeats']} "
        f"(device {m['device']}, load avg {m['loadavg_start'][0]:.1f} -> "
        f"{m['loadavg_end'][0]:.1f} on {m['cpu_count']} CPUs)",
        f"densities: {', '.join(f'{k} = {v:.1%}' for k, v in cfg['densities'].items())}",
        "",
        f"{'contender':<22}{'net-it/s':>10}{'ms/net-it':>11}   samples (net-it/s)",
    ]
    for key, f in result["figures"].items():
        r = f["net_it_per_s"]
        samples = ", ".join(f"{s:.0f}" for s in f["samples_net_it_per_s"])
        lines.append(f"{key:<22}{r:>10.1f}{1000 / r:>11.2f}   {samples}")
    lines += ["", "ratios:"]
    for name, r in result["ratios"].items():
        lines.append(f"  {name:<20} {r['value']:7.2f}x  ({r['numerator']} / {r['denominator']})")
    return lines


def _render_costs(result: dict[str, Any]) -> list[str]:
    lines = ["", "evaluation share (K networks, 100% density):"]
    for name, e in result["evaluation"].items():
        at = e["eval_share_at_horizon"]
        lines.append(
            f"  {name:<10} test at every evaluation {e['eval_share_every_evaluation']:6.1%}; "
            + "; ".join(f"at a {int(h):,}-iteration horizon {v:.1%}" for h, v in at.items())
        )
    s = result["startup"]
    lines += [
        "",
        f"stage startup (fresh process, K={s['k']:.0f}, chunk of {s['chunk_iterations']:.0f}): "
        f"{s['startup_s']:.1f}s to the first trained chunk = interpreter {s['interpreter_s']:.1f}s "
        f"+ imports {s['imports_s']:.1f}s + data load {s['data_load_s']:.1f}s + engine build "
        f"{s['engine_build_s']:.1f}s + compile {s['compile_train_s']:.1f}s + chunk "
        f"{s['chunk_s']:.1f}s; evaluation compile {s['compile_eval_s']:.1f}s",
    ]
    c = result["compute"]
    f = {k: v / 1e6 for k, v in c["flops_per_net_iteration"].items()}
    return [
        *lines,
        "",
        f"compute per net-iteration: training {f['training']:.1f} MFLOP (forward "
        f"{f['forward']:.1f}, backward {f['backward']:.1f}) + evaluation "
        f"{f['evaluation']:.1f} MFLOP = {f['total']:.1f} MFLOP; evaluation is "
        f"{f['evaluation'] / f['total']:.0%} of the FLOPs",
        "  sustained: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in c["gflops_per_s"].items())
        + f"; {TARGET_SPEEDUP:.0f}x (c) would need {c['gflops_per_s_for_target']:.0f} GFLOP/s",
    ]


def _render_verdicts(result: dict[str, Any]) -> list[str]:
    p = result["paper_estimate"]
    profile = p["profile"] or "none: every network to the horizon"
    lines = [
        "",
        f"paper preset estimate: {p['total_h']:.1f} h (patience {p['patience']:,}, test every "
        f"{p['test_every']:,}; stopping profile {profile}; {p['assumptions']})",
    ]
    for name, c in p["conditions"].items():
        lines.append(
            f"  {name:<7} {c['stages']:>2} stages x K={c['k']:<2}: "
            f"{c['mean_stage_s'] / 60:.1f} min/stage, {c['total_s'] / 3600:.2f} h"
        )
    lines += ["", "targets:"]
    for t in result["targets"]:
        verdict = "PASS" if t["pass"] else "FAIL"
        lines.append(
            f"  {verdict}  {t['name']}: {t['value']:.3g} ({t['direction']} {t['threshold']})"
        )
    return lines


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of a `run` result."""
    conv = bench_conv.render(result["conv2"]) if "conv2" in result else []
    stack = bench_stack.render(result["stack"]) if "stack" in result else []
    return "\n".join(
        [
            *_render_figures(result),
            *_render_costs(result),
            *conv,
            *stack,
            *_render_verdicts(result),
        ]
    )


def main(cfg: BenchConfig, root: Path, out: Path) -> dict[str, Any]:
    """`lottery bench [--quick] [--out PATH]`: run, print, write the JSON atomically."""
    result = run(cfg, root)
    result["quick"] = cfg == QUICK
    _say("")
    _say(render(result))
    io.write_json(out, result)
    _say(f"\nwrote {out}")
    return result
