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

With `patience` P > 0 a network stops P iterations after its best evaluation; the stack
is then rebuilt without it (its weights, Adam moments and data stream carried over), so a
stopped network costs nothing more. A network's trajectory is bit-identical whatever else
is in its stack, as long as the stack holds at least two networks: XLA compiles a batch
of one to a different CPU kernel (last-bit differences). So a stack that starts with two
or more networks never shrinks below two: the last network to stop stays in as ballast
until the final one stops. P = 0 trains every network to the horizon (the paper).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lottery.arch import LENET, Architecture
from lottery.convnet import XLA as CONV_XLA
from lottery.convnet import StackedConvNet
from lottery.data import Split
from lottery.masks import Mask, Weights
from lottery.model import Adam, StackedMLP, device_name, tf
from lottery.stopping import Tracker

#: Compile the train chunk and evaluation with XLA (env LOTTERY_JIT=0 turns it off).
JIT = os.environ.get("LOTTERY_JIT", "1") != "0"
#: Curves at every evaluation ("iteration"), and on the test grid ("test_iteration").
VAL_CURVE_KEYS = ("train_loss", "val_loss", "val_accuracy")
TEST_CURVE_KEYS = ("test_loss", "test_accuracy")
CURVE_KEYS = (*VAL_CURVE_KEYS, *TEST_CURVE_KEYS)
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


@dataclass
class NetResult:
    """What one network's training produced."""

    weights: Weights  # at the last iteration it trained
    curves: dict[str, list[float]]  # "iteration" + VAL_CURVE_KEYS, "test_iteration" + TEST_...
    early_stop_iteration: int
    rewind: Weights | None = None
    summary: dict[str, float] = field(default_factory=dict)
    stop_iteration: int = 0
    stop_reason: str = ""


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


def stacked_model(n_networks: int, architecture: Architecture) -> StackedMLP | StackedConvNet:
    """K networks of `architecture`: `StackedMLP` for dense ones, `StackedConvNet` for conv."""
    if architecture.layers[0].kind == "conv":
        return StackedConvNet(n_networks, architecture)
    return StackedMLP(n_networks, architecture)


def _masked_layers(model: StackedMLP | StackedConvNet) -> list[Any]:
    """The stack's masked layers, each with kernel, bias and mask (axis 0: the network)."""
    return list(model.layers if isinstance(model, StackedConvNet) else model.dense)


def _empty_curves() -> dict[str, list[float]]:
    return {key: [] for key in ("iteration", *VAL_CURVE_KEYS, "test_iteration", *TEST_CURVE_KEYS)}


class Engine:
    """Holds the data on the device and the compiled steps for a stack of K networks."""

    def __init__(
        self,
        split: Split,
        n_networks: int,
        cfg: TrainConfig,
        architecture: Architecture = LENET,
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
        self.cfg = cfg
        self.arch = architecture
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
        self.model = stacked_model(n, self.arch)
        self.optimizer = Adam(self.model.trainable, learning_rate=self.cfg.learning_rate)
        idx_spec = tf.TensorSpec([None, n, self.cfg.batch_size], tf.int32)
        # XLA (jit_compile) fuses the step: ~1.5-2x faster on CPU, deterministic run to run
        # (not for conv stacks: XLA's CPU convolutions are far slower, see convnet.XLA).
        jit = JIT and (CONV_XLA or not isinstance(self.model, StackedConvNet))
        self._train_chunk = tf.function(
            self._train_chunk_py, input_signature=[idx_spec], jit_compile=jit
        )
        self._evaluate_val = tf.function(
            lambda: self._metrics(self.x_val, self.y_val), jit_compile=jit
        )
        self._evaluate_test = tf.function(
            lambda: self._metrics(self.x_test, self.y_test), jit_compile=jit
        )

    def _state(self) -> list[np.ndarray]:
        """Everything that carries a stack's training on: per-network rows (axis 0)."""
        layers = _masked_layers(self.model)
        return [
            *(v.numpy() for layer in layers for v in (layer.kernel, layer.bias, layer.mask)),
            *(v.numpy() for v in (*self.optimizer.m, *self.optimizer.v)),
        ]

    def _restack(self, rows: Sequence[int]) -> None:
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
                logits = self.model(x)
                per_net = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), axis=1
                )
                loss = tf.reduce_sum(per_net)  # networks are independent: sum of their losses
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads)
            total += per_net
        return total / tf.cast(tf.shape(idx)[0], tf.float32)

    def _metrics(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Loss and accuracy of each network on (x, y), each network's numbers the same
        whatever else is in the stack (the model's `logits_each`)."""
        logits = self.model.logits_each(x)  # (K, N, 10)
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

    def evaluate(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """Each network's (loss, accuracy) on "val" or "test"."""
        fn = self._evaluate_val if which == "val" else self._evaluate_test
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
    ) -> list[NetResult]:
        """Train the K networks from `inits[k] * masks[k]`, data order from `seeds[k]`."""
        if not (len(inits) == len(masks) == len(seeds) == self.k):
            raise ValueError(f"need {self.k} inits, masks and seeds")
        if self.stack_size != self.k:
            self._build(self.k)
        self.model.load(inits, masks)
        self.optimizer.reset()  # a fresh optimizer each run (moments, step count)
        run = _Run(self, [BatchStream(self.n_train, self.cfg.batch_size, s) for s in seeds])
        self.timings = run.timings
        run.go(progress or _stderr, label, on_evaluation)
        return run.results()


class _Run:
    """One `Engine.train` call: the networks' bookkeeping while the stack trains."""

    def __init__(self, engine: Engine, streams: list[BatchStream]) -> None:
        cfg = engine.cfg
        self.engine, self.cfg, self.streams = engine, cfg, streams
        n = len(streams)
        self.rows = list(range(n))  # network in each row of the current stack
        self.active = set(self.rows)
        self.trackers = [Tracker(cfg.patience, cfg.iterations) for _ in range(n)]
        self.curves = [_empty_curves() for _ in range(n)]
        self.final: dict[int, Weights] = {}
        self.reasons: dict[int, str] = {}
        self.rewind: list[Weights | None] = [None] * n
        if cfg.rewind_iteration == 0:
            self.rewind = list(engine.model.export())
        self.train_loss, self.steps = np.zeros(n), 0
        self.timings = dict.fromkeys(
            ("train_s", "val_s", "test_s", "restack_s", "net_iterations"), 0.0
        ) | dict.fromkeys(("evaluations", "test_evaluations", "restacks"), 0.0)

    def _timed(self, part: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        self.timings[part] += time.perf_counter() - start
        return out

    def go(self, log: Callable[[str], None], label: str, on_eval: EvalCallback | None) -> None:
        cfg, engine = self.cfg, self.engine
        points = eval_points(cfg)
        snap = cfg.rewind_iteration
        stops = sorted(set(points) | ({snap} if snap else set()))
        done, start = 0, time.perf_counter()
        report_every = max(1, len(points) // 10)
        for stop in stops:
            steps = stop - done
            idx = np.stack([self.streams[r].take(steps) for r in self.rows], axis=1)
            loss = self._timed("train_s", engine.train_chunk, idx)
            self.timings["net_iterations"] += steps * len(self.rows)
            self.train_loss[self.rows] += loss * steps
            self.steps += steps
            done = stop
            if stop == snap:
                exported = engine.model.export()
                for row, net in enumerate(self.rows):
                    if net in self.active:
                        self.rewind[net] = exported[row]
            if stop not in points:
                continue
            rows = self._evaluate(stop, on_eval)
            n_eval = points.index(stop) + 1
            if stop == cfg.iterations or n_eval % report_every == 0 or not self.active:
                self._log(log, label, stop, rows, time.perf_counter() - start)
            if not self.active:
                break
            self._shrink()

    def _evaluate(self, it: int, on_eval: EvalCallback | None) -> dict[int, dict[str, float]]:
        cfg, engine = self.cfg, self.engine
        val_loss, val_acc = self._timed("val_s", engine.evaluate, "val")
        self.timings["evaluations"] += 1
        live = [(row, net) for row, net in enumerate(self.rows) if net in self.active]
        rows: dict[int, dict[str, float]] = {}
        new_best, stopping = False, []
        for row, net in live:
            c = self.curves[net]
            c["iteration"].append(float(it))
            c["train_loss"].append(float(self.train_loss[net] / self.steps))
            c["val_loss"].append(float(val_loss[row]))
            c["val_accuracy"].append(float(val_acc[row]))
            new_best |= self.trackers[net].update(len(c["iteration"]) - 1, it, float(val_loss[row]))
            reason = self.trackers[net].stop_reason(it)
            if reason is not None:
                stopping.append((row, net, reason))
            rows[net] = {key: c[key][-1] for key in VAL_CURVE_KEYS}
        self.train_loss[:], self.steps = 0.0, 0
        test_every = cfg.test_every or cfg.eval_every
        if new_best or stopping or it % test_every == 0:
            test_loss, test_acc = self._timed("test_s", engine.evaluate, "test")
            self.timings["test_evaluations"] += 1
            for row, net in live:
                c = self.curves[net]
                c["test_iteration"].append(float(it))
                c["test_loss"].append(float(test_loss[row]))
                c["test_accuracy"].append(float(test_acc[row]))
                rows[net].update({key: c[key][-1] for key in TEST_CURVE_KEYS})
        if stopping:
            exported = engine.model.export()
            for row, net, reason in stopping:
                self.final[net], self.reasons[net] = exported[row], reason
                self.active.discard(net)
        if on_eval is not None:
            on_eval(it, rows)
        return rows

    def _shrink(self) -> None:
        """Drop stopped networks from the stack (never below two rows: see the module)."""
        keep = [r for r, net in enumerate(self.rows) if net in self.active]
        if len(keep) == len(self.rows):
            return
        if len(keep) == 1 and len(self.rows) >= 2:
            ballast = next(r for r, net in enumerate(self.rows) if net not in self.active)
            keep = sorted([*keep, ballast])
            if len(keep) == len(self.rows):
                return
        self._timed("restack_s", self.engine._restack, keep)
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
        if not rows:
            return
        rate = self.timings["net_iterations"] / max(elapsed, 1e-9)
        left = (cfg.iterations - it) * len(self.active)
        eta = f", ≤{_duration(left / rate)} left" if self.active and rate > 0 else ""
        tested = [r["test_accuracy"] for r in rows.values() if "test_accuracy" in r]
        test = f"test acc {np.mean(tested) * 100:.2f}%  " if tested else ""
        log(
            f"{label}iteration {it:>6}/{cfg.iterations}  "
            f"train loss {np.mean([r['train_loss'] for r in rows.values()]):.4f}  "
            f"val loss {np.mean([r['val_loss'] for r in rows.values()]):.4f}  {test}"
            f"({len(self.active)}/{len(self.curves)} training, {elapsed:.0f}s, "
            f"{rate:.0f} net-it/s{eta})"
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
            out.append(
                NetResult(
                    weights=self.final[net],
                    curves=curves,
                    early_stop_iteration=int(summary["early_stop_iteration"]),
                    rewind=self.rewind[net],
                    summary=summary,
                    stop_iteration=int(summary["stop_iteration"]),
                    stop_reason=self.reasons[net],
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
