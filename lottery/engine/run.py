"""One `Engine.train` call: which networks still train and which are still evaluated, their
curves, and the weights each network returns.

A network is *evaluated* until its early stop is settled (`lottery.core.stopping`), and
*trains* until the horizon, or until it is settled when it does not train to the horizon
(`to_horizon`: its weights feed a later round). Once no network of the stack is evaluated
any more, the stack trains on to the horizon in long chunks; networks that stop are dropped
from the stack (`Engine.restack`), which leaves the others' bits unchanged.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lottery.core.masks import Weights
from lottery.core.stopping import PATIENCE, Tracker
from lottery.engine.config import (
    TEST_CURVE_KEYS,
    VAL_CURVE_KEYS,
    BatchStream,
    EvalCallback,
    NetResult,
    TrainConfig,
    empty_curves,
    eval_points,
    summarise,
)

if TYPE_CHECKING:
    from lottery.engine.training import Engine

#: {network index: its metrics at one evaluation}
Rows = dict[int, dict[str, float]]


class Timings(dict[str, float]):
    """Seconds and counts of one run, by part (`lottery bench` reads them)."""

    def __init__(self) -> None:
        super().__init__(
            dict.fromkeys(("train_s", "val_s", "test_s", "restack_s", "net_iterations"), 0.0)
            | dict.fromkeys(("evaluations", "test_evaluations", "restacks"), 0.0)
        )

    def timed(self, part: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        self[part] += time.perf_counter() - start
        return out


class Run:
    """The state of one training call, from the first chunk to each network's result."""

    def __init__(self, engine: Engine, streams: list[BatchStream], to_horizon: list[bool]) -> None:
        cfg = engine.cfg
        self.engine, self.cfg, self.streams, self.to_horizon = engine, cfg, streams, to_horizon
        n = len(streams)
        self.rows = list(range(n))  # network in each row of the current stack
        self.training = set(self.rows)  # networks still in the stack
        self.evaluating = set(self.rows)  # networks whose early stop is not settled yet
        self.trackers = [Tracker(cfg.patience, cfg.iterations) for _ in range(n)]
        self.curves = [empty_curves() for _ in range(n)]
        self.final: dict[int, tuple[int, Weights]] = {}  # (iteration, weights) returned
        self.best: dict[int, tuple[int, Weights]] = {}  # keep="best": weights at the minimum
        self.reasons: dict[int, str] = {}
        self.rewind: list[Weights | None] = [None] * n
        if cfg.rewind_iteration == 0:
            self.rewind = list(engine.model.export())
        self.loss_sum, self.loss_steps = np.zeros(n), np.zeros(n)
        self.timings = Timings()

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
                log(progress_line(self, label, stop, rows, time.perf_counter() - start))
            if not self.training:
                break
            self._shrink()

    def _train(self, steps: int) -> None:
        if steps <= 0:
            return
        idx = np.stack([self.streams[r].take(steps) for r in self.rows], axis=1)
        loss = self.timings.timed("train_s", self.engine.train_chunk, idx)
        self.timings["net_iterations"] += steps * len(self.rows)
        self.loss_sum[self.rows] += loss * steps
        self.loss_steps[self.rows] += steps

    def _evaluate(self, it: int, on_eval: EvalCallback | None) -> Rows:
        """Evaluate the networks whose early stop is open (and, at the horizon, every
        network still training); apply the stopping rule to each."""
        last = it >= self.cfg.iterations
        live = [
            (row, net)
            for row, net in enumerate(self.rows)
            if net in self.evaluating or (last and net in self.training)
        ]
        val = self.timings.timed("val_s", self.engine.evaluate, "val", [r for r, _ in live])
        self.timings["evaluations"] += 1
        rows: Rows = {}
        improved, stopping = [], []
        for i, (row, net) in enumerate(live):
            train_loss = float(self.loss_sum[net] / max(self.loss_steps[net], 1))
            self.loss_sum[net], self.loss_steps[net] = 0.0, 0
            rows[net] = record(self.curves[net], "iteration", it, (train_loss, *_at(val, i)))
            n_evals = len(self.curves[net]["iteration"])
            if self.trackers[net].update(n_evals - 1, it, rows[net]["val_loss"]):
                improved.append((row, net))
            reason = self.trackers[net].stop_reason(it)
            if reason is not None:
                stopping.append((row, net, reason))
        test_every = self.cfg.test_every or self.cfg.eval_every
        if improved or stopping or it % test_every == 0:
            test = self.timings.timed("test_s", self.engine.evaluate, "test", [r for r, _ in live])
            self.timings["test_evaluations"] += 1
            for i, (_, net) in enumerate(live):
                rows[net].update(record(self.curves[net], "test_iteration", it, _at(test, i)))
        settle(self, it, improved, stopping)
        if on_eval is not None:
            on_eval(it, rows)
        return rows

    def _shrink(self) -> None:
        """Drop the networks that stopped from the stack (the others' bits do not change)."""
        keep = [r for r, net in enumerate(self.rows) if net in self.training]
        if len(keep) == len(self.rows):
            return
        self.timings.timed("restack_s", self.engine.restack, keep)
        self.timings["restacks"] += 1
        self.rows = [self.rows[r] for r in keep]

    def results(self) -> list[NetResult]:
        return net_results(self.cfg, self.curves, self.final, self.rewind, self.reasons)


def settle(
    run: Run, it: int, improved: list[tuple[int, int]], stopping: list[tuple[int, int, str]]
) -> None:
    """Keep the weights of new minima (keep="best"); end the evaluations of settled
    networks that train on to the horizon, and the training of the others."""
    keep_best = run.cfg.keep == "best"
    exported = run.engine.model.export() if (keep_best and improved) or stopping else []
    if keep_best:
        for row, net in improved:
            run.best[net] = (it, exported[row])
    for row, net, reason in stopping:
        run.evaluating.discard(net)
        if reason == PATIENCE and run.to_horizon[net]:
            continue  # its early stop is settled; it trains on, unevaluated
        run.final[net] = run.best[net] if keep_best else (it, exported[row])
        run.reasons[net] = reason
        run.training.discard(net)


def _at(metrics: tuple[np.ndarray, np.ndarray], i: int) -> tuple[float, float]:
    """(loss, accuracy) of the i-th network evaluated."""
    return float(metrics[0][i]), float(metrics[1][i])


def record(
    curves: dict[str, list[float]], axis: str, it: int, values: tuple[float, ...]
) -> dict[str, float]:
    """Append one evaluation to a network's curves: on the validation grid ("iteration":
    train loss, val loss, val accuracy) or the test grid ("test_iteration": test loss and
    accuracy). Returns the values by curve name."""
    keys = VAL_CURVE_KEYS if axis == "iteration" else TEST_CURVE_KEYS
    curves[axis].append(float(it))
    for key, value in zip(keys, values, strict=True):
        curves[key].append(value)
    return dict(zip(keys, values, strict=True))


def net_results(
    cfg: TrainConfig,
    curves: list[dict[str, list[float]]],
    final: dict[int, tuple[int, Weights]],
    rewind: list[Weights | None],
    reasons: dict[int, str],
) -> list[NetResult]:
    """Each network's result, in network order."""
    missing = [n for n, w in enumerate(rewind) if w is None]
    if cfg.rewind_iteration is not None and missing:
        raise ValueError(
            f"network(s) {missing} stopped before the rewind iteration "
            f"{cfg.rewind_iteration}: use a larger patience"
        )
    out = []
    for net, curve in enumerate(curves):
        summary = summarise(curve)
        weights_iteration, weights = final[net]
        out.append(
            NetResult(
                weights=weights,
                curves=curve,
                early_stop_iteration=int(summary["early_stop_iteration"]),
                rewind=rewind[net],
                summary=summary,
                stop_iteration=int(summary["stop_iteration"]),
                stop_reason=reasons[net],
                weights_iteration=weights_iteration,
            )
        )
    return out


def progress_line(run: Run, label: str, it: int, rows: Rows, elapsed: float) -> str:
    """One progress line: losses and test accuracy averaged over the networks evaluated,
    how many still train and are evaluated, speed, and an upper bound on the time left."""
    cfg, timings = run.cfg, run.timings
    rate = timings["net_iterations"] / max(elapsed, 1e-9)
    left = (cfg.iterations - it) * len(run.training)
    eta = f", ≤{_duration(left / rate)} left" if run.training and rate > 0 else ""
    counts = (
        f"{len(run.training)}/{len(run.curves)} training, "
        f"{len(run.evaluating)} evaluated, {elapsed:.0f}s, {rate:.0f} net-it/s{eta}"
    )
    if not rows:
        return f"{label}iteration {it:>6}/{cfg.iterations}  early stops settled ({counts})"
    tested = [r["test_accuracy"] for r in rows.values() if "test_accuracy" in r]
    test = f"test acc {np.mean(tested) * 100:.2f}%  " if tested else ""
    return (
        f"{label}iteration {it:>6}/{cfg.iterations}  "
        f"train loss {np.mean([r['train_loss'] for r in rows.values()]):.4f}  "
        f"val loss {np.mean([r['val_loss'] for r in rows.values()]):.4f}  {test}({counts})"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
