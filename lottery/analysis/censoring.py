"""The censoring rule: when a run's early stop is only a lower bound.

A run's early-stop iteration is only a lower bound (and its accuracy may be understated)
when it stopped too soon after its minimum validation loss for a later, lower minimum to
be ruled out. With a window of W iterations (`CensoringWindow`; the reports take W from
the committed patience evidence, `lottery.analysis.patience.evidence_window`) a run is
censored when it stopped, at the horizon or by patience, less than W iterations after its
minimum; W is the longest wait between two successive new minima seen in full-horizon
training, so a patience of at least W never censors. Without a window the rule is the
narrowest one: the run reached the horizon with its minimum in the last two evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class CensoringWindow:
    """W (`iterations`; None: the last-two-evaluations rule) and where it came from."""

    iterations: int | None
    source: str


def censor_from(stop_iteration: int, eval_every: int) -> int:
    """The second-to-last evaluation of a run that trained `stop_iteration` iterations.

    Evaluations happen every `eval_every` iterations and after the last one.
    """
    if stop_iteration % eval_every == 0:
        return stop_iteration - eval_every
    return (stop_iteration // eval_every) * eval_every


def is_censored(
    stop_reason: str,
    early_stop_iteration: float,
    stop_iteration: int,
    eval_every: int,
    window: int | None = None,
) -> bool:
    """Stopped less than `window` iterations after the minimum; without a window: stopped
    at the horizon with the minimum validation loss in the last two evaluations."""
    if window is not None:
        return int(stop_iteration) - float(early_stop_iteration) < window
    if stop_reason != "horizon":
        return False
    return early_stop_iteration >= censor_from(int(stop_iteration), int(eval_every))


def censor(runs: pd.DataFrame, window: CensoringWindow | int | None) -> pd.DataFrame:
    """A copy of a runs frame with `censored` recomputed under `window`."""
    w = window.iterations if isinstance(window, CensoringWindow) else window
    out = runs.copy()
    out["censored"] = [
        is_censored(str(r), float(e), int(s), int(v), w)
        for r, e, s, v in zip(
            out["stop_reason"],
            out["early_stop_iteration"],
            out["stop_iteration"],
            out["eval_every"],
            strict=True,
        )
    ]
    return out
