"""Early stopping as a pure rule: the minimum validation loss, and when training may stop.

The early-stop iteration is the evaluation with the minimum validation loss (the first
one on ties). With `patience` P > 0 a network stops at the first evaluation that comes
P or more iterations after its best one; with P = 0 it trains to the horizon (the
paper's protocol). The training engine applies this rule online, evaluation by
evaluation (`Tracker`); `replay` applies the same rule to a finished full-horizon curve,
which is how `lottery patience` shows what a patience would have changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HORIZON = "horizon"
PATIENCE = "patience"


class Tracker:
    """One network's running minimum of the validation loss and its stopping rule."""

    def __init__(self, patience: int, horizon: int) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0 (got {patience})")
        self.patience = patience
        self.horizon = horizon
        self.best_loss = math.inf
        self.best_iteration = 0
        self.best_index = -1  # index of the best evaluation in the curve

    def update(self, index: int, iteration: int, val_loss: float) -> bool:
        """Record one evaluation; True when it is a new minimum (strictly lower)."""
        if val_loss < self.best_loss or self.best_index < 0:
            self.best_loss, self.best_iteration, self.best_index = val_loss, iteration, index
            return True
        return False

    def stop_reason(self, iteration: int) -> str | None:
        """Why training stops after this evaluation, or None to go on."""
        if iteration >= self.horizon:
            return HORIZON
        if self.patience and iteration - self.best_iteration >= self.patience:
            return PATIENCE
        return None


@dataclass(frozen=True)
class Replay:
    """What a patience would have produced on a curve: indices into that curve."""

    best_index: int  # the early-stop evaluation
    stop_index: int  # the last evaluation trained
    reason: str  # HORIZON or PATIENCE


def replay(
    iterations: Sequence[float], val_loss: Sequence[float], patience: int, horizon: int
) -> Replay:
    """Apply the stopping rule with `patience` to a curve evaluated at `iterations`."""
    if not iterations or len(iterations) != len(val_loss):
        raise ValueError("need one validation loss per evaluation, and at least one")
    tracker = Tracker(patience, horizon)
    for i, (it, loss) in enumerate(zip(iterations, val_loss, strict=True)):
        tracker.update(i, int(it), float(loss))
        reason = tracker.stop_reason(int(it))
        if reason is not None:
            return Replay(tracker.best_index, i, reason)
    raise ValueError(
        f"the curve ends at iteration {int(iterations[-1])}, before the horizon ({horizon}) "
        f"and before patience {patience} stops it: replay needs a longer curve"
    )
