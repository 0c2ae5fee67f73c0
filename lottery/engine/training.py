"""The masked training engine: K networks trained side by side in one compiled step.

Every network k has its own initial weights, mask and data order (its own seed); they
share nothing but the matrix multiplications. The K networks are copies of one
`Architecture` (`stacked_model`): LeNet-300-100 by default, any MLP (`model.StackedMLP`),
or Conv-2/4/6 (`convnet.StackedConvNet`, which reshapes the flat images itself). Training
runs in chunks of `eval_every` iterations inside one `tf.function` (no Python per step);
after each chunk the networks are evaluated on the validation set, each network as its own
chain of GEMMs (or convolutions), so a network's numbers do not depend on what else is in
its stack.

Early stopping (`lottery.stopping`): the early-stop iteration is the evaluation with the
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
on CPU (tests/test_engine.py). On a GPU, library kernels may choose their blocking by
the stack's size: there, bits may depend on the stack.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lottery.core.arch import LENET, Architecture
from lottery.core.masks import Mask, Weights
from lottery.core.stopping import PATIENCE, Tracker
from lottery.data.load import Split
from lottery.engine.conv import XLA as CONV_XLA
from lottery.engine.conv import StackedConvNet
from lottery.engine.mlp import Adam, StackedMLP, device_name, tf

#: Compile the train chunk and evaluation with XLA (env LOTTERY_JIT=0 turns it off).
JIT = os.environ.get("LOTTERY_JIT", "1") != "0"
#: Curves at every evaluation ("iteration"), and on the test grid ("test_iteration").
VAL_CURVE_KEYS = ("train_loss", "val_loss", "val_accuracy")
TEST_CURVE_KEYS = ("test_loss", "test_accuracy")
CURVE_KEYS = (*VAL_CURVE_KEYS, *TEST_CURVE_KEYS)
#: What `TrainConfig.keep` may be.
KEEP = ("last", "best")
#: Called after each evaluation with the iteration and {network index: metrics}.
EvalCallback = Callable[[int, dict[int, dict[str, float]]], None]


@dataclass(frozen=True)
class TrainConfig:
    iterations: int  # the horizon: the most iterations any network trains
    batch_size: int = 60
    learning_rate: float = 1.2e-3
    eval_every: int = 100
    #: Also return each network's weights at this iteration (late rewinding); 0 = θ0.
    rewind_iteration: int | None = None
    #: Stop a network this many iterations after its minimum validation loss; 0 = never.
    patience: int = 0
    #: Also evaluate the test set every N iterations (learning curves); None = every
    #: evaluation (the test curve is then as dense as the validation curve).
    test_every: int | None = None
    #: The weights each network returns: "last" (where it stopped training) or "best" (at
    #: its minimum validation loss, as Keras' `restore_best_weights`).
    keep: str = "last"
    #: Adam's ε (Keras: 1e-7; the paper's TF1 code: 1e-8).
    adam_epsilon: float = 1e-7


@dataclass
class NetResult:
    """What one network's training produced."""

    weights: Weights  # at `weights_iteration`: the last iteration trained, or its minimum
    curves: dict[str, list[float]]  # "iteration" + VAL_CURVE_KEYS, "test_iteration" + TEST_...
    early_stop_iteration: int
    rewind: Weights | None = None
    summary: dict[str, float] = field(default_factory=dict)
    stop_iteration: int = 0
    stop_reason: str = ""
    weights_iteration: int = 0  # the iteration `weights` are from


class BatchStream:
    """Minibatch indices for one network: epochs of seeded permutations, end to end."""

    def __init__(self, n_examples: int, batch_size: int, seed: int) -> None:
        self.n = n_examples
        self.batch = batch_size
        self.rng = np.random.default_rng(seed)
        self.buffer = np.empty(0, dtype=np.int32)

    def take(self, steps: int) -> np.ndarray:
        need = steps * self.batch
        while self.buffer.size < need:
            perm = self.rng.permutation(self.n).astype(np.int32)
            self.buffer = np.concatenate([self.buffer, perm])
        out, self.buffer = self.buffer[:need], self.buffer[need:]
        return out.reshape(steps, self.batch)


def eval_points(cfg: TrainConfig) -> list[int]:
    """Iterations after which the networks are evaluated (always including the last)."""
    points = list(range(cfg.eval_every, cfg.iterations + 1, cfg.eval_every))
    if not points or points[-1] != cfg.iterations:
        points.append(cfg.iterations)
    return points


def summarise(curves: dict[str, list[float]]) -> dict[str, float]:
    """The early-stop and stop numbers of a finished curve (the test value at the
    early-stop iteration must be on the test grid: the engine makes sure it is)."""
    i = int(np.argmin(curves["val_loss"]))  # first minimum: earliest on ties
    es = curves["iteration"][i]
    test_iterations = curves.get("test_iteration", curves["iteration"])
    j = test_iterations.index(es)
    stop = curves["iteration"][-1]
    if test_iterations[-1] != stop:
        raise ValueError(f"no test evaluation at the last iteration trained ({stop:.0f})")
    return {
        "early_stop_iteration": float(es),
        "val_loss_at_early_stop": curves["val_loss"][i],
        "val_accuracy_at_early_stop": curves["val_accuracy"][i],
        "test_accuracy_at_early_stop": curves["test_accuracy"][j],
        "stop_iteration": float(stop),
        "test_accuracy_at_stop": curves["test_accuracy"][-1],
        "val_loss_at_stop": curves["val_loss"][-1],
    }


def stacked_model(
    n_networks: int, architecture: Architecture, stable: bool = True
) -> StackedMLP | StackedConvNet:
    """K networks of `architecture`: `StackedMLP` for dense ones, `StackedConvNet` for conv
    (always stack-stable; `stable` picks the MLP's formulation, see `model.StackedMLP`)."""
    if architecture.layers[0].kind == "conv":
        return StackedConvNet(n_networks, architecture)
    return StackedMLP(n_networks, architecture, stable=stable)


def _masked_layers(model: StackedMLP | StackedConvNet) -> list[Any]:
    """The stack's masked layers, each with kernel, bias and mask (axis 0: the network)."""
    return list(model.layers if isinstance(model, StackedConvNet) else model.dense)


def _empty_curves() -> dict[str, list[float]]:
    return {key: [] for key in ("iteration", *VAL_CURVE_KEYS, "test_iteration", *TEST_CURVE_KEYS)}


class Engine:
    """Holds the data on the device and the compiled steps for a stack of K networks.

    `stable=False` trains with the earlier batched formulation (see `model.StackedMLP`),
    whose last bits depend on the stack size: only `lottery bench` uses it, for the price.
    """

    def __init__(
        self,
        split: Split,
        n_networks: int,
        cfg: TrainConfig,
        architecture: Architecture = LENET,
        stable: bool = True,
    ) -> None:
        if split.x_train.shape[1] != architecture.n_inputs:
            raise ValueError(
                f"{architecture.describe()} takes images of {architecture.n_inputs} values, "
                f"but the split's images have {split.x_train.shape[1]}: choose the network's "
                f"input shape to match the dataset (params.yaml)"
            )
        if cfg.patience and cfg.patience % cfg.eval_every:
            raise ValueError(f"patience ({cfg.patience}) must be a multiple of eval_every")
        if cfg.test_every is not None and (cfg.test_every < 1 or cfg.test_every % cfg.eval_every):
            raise ValueError(f"test_every ({cfg.test_every}) must be a multiple of eval_every")
        if cfg.keep not in KEEP:
            raise ValueError(f"keep must be one of {KEEP} (got {cfg.keep!r})")
        self.cfg = cfg
        self.arch = architecture
        self.stable = stable
        self.k = n_networks
        self.x_train = tf.constant(split.x_train)  # uint8 on the device; scaled per batch
        self.y_train = tf.constant(split.y_train.astype(np.int32))
        self.x_val = tf.constant(split.x_val.astype(np.float32) / 255.0)
        self.y_val = tf.constant(split.y_val.astype(np.int32))
        self.x_test = tf.constant(split.x_test.astype(np.float32) / 255.0)
        self.y_test = tf.constant(split.y_test.astype(np.int32))
        self.n_train = int(split.x_train.shape[0])
        #: Seconds and counts of the last `train` call, by part (`lottery bench` reads them).
        self.timings: dict[str, float] = {}
        self._build(n_networks)

    # ------------------------------------------------------------ the compiled stack

    def _build(self, n: int) -> None:
        """A stack of n networks with its optimizer and compiled functions."""
        self.stack_size = n
        self.model = stacked_model(n, self.arch, self.stable)
        self.optimizer = Adam(
            self.model.trainable,
            learning_rate=self.cfg.learning_rate,
            epsilon=self.cfg.adam_epsilon,
        )
        idx_spec = tf.TensorSpec([None, n, self.cfg.batch_size], tf.int32)
        # XLA (jit_compile) fuses the step: ~1.5-2x faster on CPU, deterministic run to run
        # (not for conv stacks: XLA's CPU convolutions are far slower, see convnet.XLA).
        self._jit = JIT and (CONV_XLA or not isinstance(self.model, StackedConvNet))
        self._train_chunk = tf.function(
            self._train_chunk_py, input_signature=[idx_spec], jit_compile=self._jit
        )
        self._evaluators: dict[tuple[str, tuple[int, ...]], Any] = {}

    def _state(self) -> list[np.ndarray]:
        """Everything that carries a stack's training on: per-network rows (axis 0)."""
        layers = _masked_layers(self.model)
        return [
            *(v.numpy() for layer in layers for v in (layer.kernel, layer.bias, layer.mask)),
            *(v.numpy() for v in (*self.optimizer.m, *self.optimizer.v)),
        ]

    def restack(self, rows: Sequence[int]) -> None:
        """Rebuild the stack from rows `rows` of the current one (order kept), exactly."""
        state, step = self._state(), self.optimizer.iterations.numpy()
        self._build(len(rows))
        layers = _masked_layers(self.model)
        targets = [
            *(v for layer in layers for v in (layer.kernel, layer.bias, layer.mask)),
            *self.optimizer.m,
            *self.optimizer.v,
        ]
        for var, value in zip(targets, state, strict=True):
            var.assign(value[list(rows)])
        self.optimizer.iterations.assign(step)

    def _train_chunk_py(self, idx: tf.Tensor) -> tf.Tensor:
        variables = self.model.trainable
        total = tf.zeros([self.stack_size])
        for i in tf.range(tf.shape(idx)[0]):
            x = tf.cast(tf.gather(self.x_train, idx[i]), tf.float32) / 255.0  # (K, B, 784)
            y = tf.gather(self.y_train, idx[i])  # (K, B)
            with tf.GradientTape() as tape:
                per_net = self.model.losses(x, y)
                loss = tf.reduce_sum(per_net)  # networks are independent: sum of their losses
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads)
            total += per_net
        return total / tf.cast(tf.shape(idx)[0], tf.float32)

    def _metrics(
        self, x: tf.Tensor, y: tf.Tensor, rows: tuple[int, ...]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Loss and accuracy of networks `rows` on (x, y), each network's numbers the same
        whatever else is in the stack (the model's `logits_each`)."""
        logits = self.model.logits_each(x, rows)  # (R, N, 10)
        losses, accuracies = [], []
        for k in range(logits.shape[0]):  # one reduction per network: XLA's reduction of a
            # (K, N) tensor along N changes its summation order, and last bits, with K
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits[k])
            hit = tf.equal(tf.argmax(logits[k], axis=1, output_type=y.dtype), y)
            losses.append(tf.reduce_mean(ce))
            accuracies.append(tf.reduce_mean(tf.cast(hit, tf.float32)))
        return tf.stack(losses), tf.stack(accuracies)

    def train_chunk(self, idx: np.ndarray) -> np.ndarray:
        """Train the stack on batch indices (steps, K, B); each network's mean loss."""
        return np.asarray(self._train_chunk(tf.constant(idx)).numpy())

    def evaluate(
        self, which: str, rows: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(loss, accuracy) on "val" or "test" of stack rows `rows` (default all), in order.
        One compiled function per set of rows (a stack evaluates fewer networks as their
        early stops settle)."""
        key = (which, tuple(range(self.stack_size)) if rows is None else tuple(rows))
        fn = self._evaluators.get(key)
        if fn is None:
            x, y = (self.x_val, self.y_val) if which == "val" else (self.x_test, self.y_test)
            fn = tf.function(lambda: self._metrics(x, y, key[1]), jit_compile=self._jit)
            self._evaluators[key] = fn
        loss, acc = fn()
        return np.asarray(loss.numpy()), np.asarray(acc.numpy())

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
        run = _Run(self, streams, horizon)
        self.timings = run.timings
        run.go(progress or _stderr, label, on_evaluation)
        return run.results()


class _Run:
    """One `Engine.train` call: which networks still train and which are still evaluated,
    their curves, and the weights each network returns."""

    def __init__(self, engine: Engine, streams: list[BatchStream], to_horizon: list[bool]) -> None:
        cfg = engine.cfg
        self.engine, self.cfg, self.streams, self.to_horizon = engine, cfg, streams, to_horizon
        n = len(streams)
        self.rows = list(range(n))  # network in each row of the current stack
        self.training = set(self.rows)  # networks still in the stack
        self.evaluating = set(self.rows)  # networks whose early stop is not settled yet
        self.trackers = [Tracker(cfg.patience, cfg.iterations) for _ in range(n)]
        self.curves = [_empty_curves() for _ in range(n)]
        self.final: dict[int, tuple[int, Weights]] = {}  # (iteration, weights) returned
        self.best: dict[int, tuple[int, Weights]] = {}  # keep="best": weights at the minimum
        self.reasons: dict[int, str] = {}
        self.rewind: list[Weights | None] = [None] * n
        if cfg.rewind_iteration == 0:
            self.rewind = list(engine.model.export())
        self.loss_sum, self.loss_steps = np.zeros(n), np.zeros(n)
        self.timings = dict.fromkeys(
            ("train_s", "val_s", "test_s", "restack_s", "net_iterations"), 0.0
        ) | dict.fromkeys(("evaluations", "test_evaluations", "restacks"), 0.0)

    def _timed(self, part: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        self.timings[part] += time.perf_counter() - start
        return out

    def go(self, log: Callable[[str], None], label: str, on_eval: EvalCallback | None) -> None:
        """Train from evaluation to evaluation; once no network of the stack is evaluated
        any more (every early stop settled), train on to the horizon in long chunks."""
        cfg = self.cfg
        points = eval_points(cfg)
        snap = cfg.rewind_iteration
        stops = sorted(set(points) | ({snap} if snap else set()))
        done, start = 0, time.perf_counter()
        report_every = max(1, len(points) // 10)
        for stop in stops:
            n_eval = points.index(stop) + 1 if stop in points else 0
            evaluate = n_eval > 0 and (bool(self.evaluating) or stop == cfg.iterations)
            report = stop == cfg.iterations or (n_eval > 0 and n_eval % report_every == 0)
            if not (evaluate or report or stop == snap):
                continue  # nobody to evaluate here: the next chunk trains on through it
            self._train(stop - done)
            done = stop
            if stop == snap:
                exported = self.engine.model.export()
                for row, net in enumerate(self.rows):
                    self.rewind[net] = exported[row]
            rows = self._evaluate(stop, on_eval) if evaluate else {}
            if report or not self.training:
                self._log(log, label, stop, rows, time.perf_counter() - start)
            if not self.training:
                break
            self._shrink()

    def _train(self, steps: int) -> None:
        if steps <= 0:
            return
        idx = np.stack([self.streams[r].take(steps) for r in self.rows], axis=1)
        loss = self._timed("train_s", self.engine.train_chunk, idx)
        self.timings["net_iterations"] += steps * len(self.rows)
        self.loss_sum[self.rows] += loss * steps
        self.loss_steps[self.rows] += steps

    def _evaluate(self, it: int, on_eval: EvalCallback | None) -> dict[int, dict[str, float]]:
        """Evaluate the networks whose early stop is open (and, at the horizon, every
        network still training); apply the stopping rule to each."""
        cfg = self.cfg
        last = it >= cfg.iterations
        live = [
            (row, net)
            for row, net in enumerate(self.rows)
            if net in self.evaluating or (last and net in self.training)
        ]
        val_loss, val_acc = self._timed("val_s", self.engine.evaluate, "val", [r for r, _ in live])
        self.timings["evaluations"] += 1
        rows: dict[int, dict[str, float]] = {}
        improved, stopping = [], []
        for i, (row, net) in enumerate(live):
            c = self.curves[net]
            c["iteration"].append(float(it))
            c["train_loss"].append(float(self.loss_sum[net] / max(self.loss_steps[net], 1)))
            c["val_loss"].append(float(val_loss[i]))
            c["val_accuracy"].append(float(val_acc[i]))
            self.loss_sum[net], self.loss_steps[net] = 0.0, 0
            if self.trackers[net].update(len(c["iteration"]) - 1, it, float(val_loss[i])):
                improved.append((row, net))
            reason = self.trackers[net].stop_reason(it)
            if reason is not None:
                stopping.append((row, net, reason))
            rows[net] = {key: c[key][-1] for key in VAL_CURVE_KEYS}
        test_every = cfg.test_every or cfg.eval_every
        if improved or stopping or it % test_every == 0:
            test_loss, test_acc = self._timed(
                "test_s", self.engine.evaluate, "test", [r for r, _ in live]
            )
            self.timings["test_evaluations"] += 1
            for i, (_, net) in enumerate(live):
                c = self.curves[net]
                c["test_iteration"].append(float(it))
                c["test_loss"].append(float(test_loss[i]))
                c["test_accuracy"].append(float(test_acc[i]))
                rows[net].update({key: c[key][-1] for key in TEST_CURVE_KEYS})
        self._settle(it, improved, stopping)
        if on_eval is not None:
            on_eval(it, rows)
        return rows

    def _settle(
        self, it: int, improved: list[tuple[int, int]], stopping: list[tuple[int, int, str]]
    ) -> None:
        """Keep the weights of new minima (keep="best"); end the evaluations of settled
        networks that train on to the horizon, and the training of the others."""
        keep_best = self.cfg.keep == "best"
        exported = self.engine.model.export() if (keep_best and improved) or stopping else []
        if keep_best:
            for row, net in improved:
                self.best[net] = (it, exported[row])
        for row, net, reason in stopping:
            self.evaluating.discard(net)
            if reason == PATIENCE and self.to_horizon[net]:
                continue  # its early stop is settled; it trains on, unevaluated
            self.final[net] = self.best[net] if keep_best else (it, exported[row])
            self.reasons[net] = reason
            self.training.discard(net)

    def _shrink(self) -> None:
        """Drop the networks that stopped from the stack (the others' bits do not change)."""
        keep = [r for r, net in enumerate(self.rows) if net in self.training]
        if len(keep) == len(self.rows):
            return
        self._timed("restack_s", self.engine.restack, keep)
        self.timings["restacks"] += 1
        self.rows = [self.rows[r] for r in keep]

    def _log(
        self,
        log: Callable[[str], None],
        label: str,
        it: int,
        rows: dict[int, dict[str, float]],
        elapsed: float,
    ) -> None:
        cfg = self.cfg
        rate = self.timings["net_iterations"] / max(elapsed, 1e-9)
        left = (cfg.iterations - it) * len(self.training)
        eta = f", ≤{_duration(left / rate)} left" if self.training and rate > 0 else ""
        counts = (
            f"{len(self.training)}/{len(self.curves)} training, "
            f"{len(self.evaluating)} evaluated, {elapsed:.0f}s, {rate:.0f} net-it/s{eta}"
        )
        if not rows:
            log(f"{label}iteration {it:>6}/{cfg.iterations}  early stops settled ({counts})")
            return
        tested = [r["test_accuracy"] for r in rows.values() if "test_accuracy" in r]
        test = f"test acc {np.mean(tested) * 100:.2f}%  " if tested else ""
        log(
            f"{label}iteration {it:>6}/{cfg.iterations}  "
            f"train loss {np.mean([r['train_loss'] for r in rows.values()]):.4f}  "
            f"val loss {np.mean([r['val_loss'] for r in rows.values()]):.4f}  {test}({counts})"
        )

    def results(self) -> list[NetResult]:
        missing = [n for n, w in enumerate(self.rewind) if w is None]
        if self.cfg.rewind_iteration is not None and missing:
            raise ValueError(
                f"network(s) {missing} stopped before the rewind iteration "
                f"{self.cfg.rewind_iteration}: use a larger patience"
            )
        out = []
        for net, curves in enumerate(self.curves):
            summary = summarise(curves)
            weights_iteration, weights = self.final[net]
            out.append(
                NetResult(
                    weights=weights,
                    curves=curves,
                    early_stop_iteration=int(summary["early_stop_iteration"]),
                    rewind=self.rewind[net],
                    summary=summary,
                    stop_iteration=int(summary["stop_iteration"]),
                    stop_reason=self.reasons[net],
                    weights_iteration=weights_iteration,
                )
            )
        return out


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


__all__ = ["CURVE_KEYS", "Engine", "NetResult", "TrainConfig", "device_name", "summarise"]
