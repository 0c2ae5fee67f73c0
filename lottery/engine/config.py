"""What the engine is told and what it returns: the training settings, one network's result,
its minibatch order, the evaluation schedule and the summary of a finished curve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lottery.core.masks import Weights

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


def empty_curves() -> dict[str, list[float]]:
    return {key: [] for key in ("iteration", *VAL_CURVE_KEYS, "test_iteration", *TEST_CURVE_KEYS)}
