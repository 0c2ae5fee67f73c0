"""The costs `lottery bench` derives from its measurements: an engine's unit costs, the share
of its time spent evaluating at a horizon, and the wall-clock estimate of a preset
(presets/paper.yaml), stage by stage, as `dvc repro` runs them one after another.

The estimate follows the training protocol (README "Protocol"): every network is evaluated
until its early stop settles (`lottery.bench.profile`); with `prune.point: horizon` the
dense network and every ticket then train on, unevaluated, to `train.iterations` (their
weights at the horizon are what the next round prunes) and are evaluated once more there,
while the controls stop training where they settle; with `prune.point: early_stop` every
network stops where it settles. With `train.patience: 0` nothing settles: every network is
trained and evaluated to the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lottery.bench.profile import StopProfile, Wallclock


@dataclass(frozen=True)
class UnitCosts:
    """Seconds per call for a stack of K networks, from one timed engine window."""

    k: int
    chunk_s: float  # one training chunk of eval_every iterations
    val_s: float  # one validation evaluation
    test_s: float  # one test evaluation

    @classmethod
    def from_timings(cls, k: int, t: dict[str, float]) -> UnitCosts:
        """From an engine's `timings` (the seconds and counts of one `train` call)."""
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


def n_test_evaluations(
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
    """The share of a stack's time spent evaluating when every network is trained and
    validated to `horizon` (no patience), the test set evaluated where a number needs it."""
    n_eval = horizon / eval_every
    n_test = n_test_evaluations(horizon, eval_every, test_every, cost.k, profile)
    evaluation = n_eval * cost.val_s + n_test * cost.test_s
    return evaluation / (n_eval * cost.chunk_s + evaluation)


def study_plan(p: Any) -> dict[str, tuple[int, list[int]]]:
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


@dataclass(frozen=True)
class StageShape:
    """How the K networks of one stage spend the horizon, on average, as fractions of it."""

    evaluated: float  # validated every eval_every iterations, until its early stop settles
    trained: float  # trained: to the horizon when it trains on, else until it settles
    early: float  # the share of networks that settle before the horizon
    changes: float  # how often the stack changes before the horizon (each a recompile)
    trains_on: bool  # settled networks train on to the horizon (else they stop)

    @classmethod
    def of(cls, settled: list[float], k: int, trains_on: bool) -> StageShape:
        """From measured settle fractions: a stack of K changes once per network that
        settles before the horizon (distinct iterations assumed), but the last stop of a
        stack that stops altogether ends the stage instead."""
        mean = sum(settled) / len(settled)
        early = sum(f < 1 for f in settled) / len(settled)
        changes = k - 1 if early == 1 else k * early
        return cls(mean, 1.0 if trains_on else mean, early, changes, trains_on)


def stage_seconds(
    train: Any, cost: UnitCosts, shape: StageShape, n_test: float, startup: dict[str, float]
) -> float:
    """One stage of a stack of `cost.k` networks: start-up, training and validation of the
    iterations each network trains and is evaluated, the last evaluation at the horizon of
    the networks that trained on unevaluated, the test evaluations, and the recompiles of
    each change of the stack (an evaluation of fewer networks; when a network stops, also
    the rebuilt training step)."""
    chunks = train.iterations / train.eval_every
    work = chunks * (cost.chunk_s * shape.trained + cost.val_s * shape.evaluated)
    last = cost.val_s * shape.early if shape.trains_on else 0.0
    recompile = startup["compile_eval_s"] + (0.0 if shape.trains_on else startup["compile_train_s"])
    return (
        startup["stage_overhead_s"] + work + last + n_test * cost.test_s + shape.changes * recompile
    )


def paper_estimate(
    costs: dict[int, UnitCosts],
    startup: dict[str, float],
    profile: StopProfile | None,
    preset: Path,
    measured: tuple[str, Wallclock] | None = None,
) -> dict[str, Any]:
    """Wall-clock of the preset, stages run one after another (`dvc repro`), each priced by
    `stage_seconds` with the settle points of `profile` at the preset's patience (none
    with patience 0). A stack is priced at the per-network cost of the largest measured K
    not above its own (K = 15 at K = 10's). `measured`: a kept study of the same protocol
    and plan with its wall-clock (`profile.measured_wallclock`), set against the estimate."""
    from lottery.core.params import load_params

    p = load_params(preset)
    t = p.train
    if t.patience and profile is None:
        raise ValueError("pricing a patience needs the patience evidence (reports/patience)")
    conditions = {
        cond: _condition(p, cond, k, rounds, costs, startup, profile)
        for cond, (k, rounds) in study_plan(p).items()
    }
    total = sum(c["total_s"] for c in conditions.values())
    return {
        "preset": str(preset.name),
        "patience": t.patience,
        "point": p.prune.point,
        "test_every": t.test_every,
        "iterations": t.iterations,
        "profile": profile.source if profile else None,
        "conditions": conditions,
        "total_s": total,
        "total_h": total / 3600,
        "measured": _measured(measured, total),
        "assumptions": (
            "stages run sequentially; early stops settle as measured by a kept study of the "
            "preset's protocol where one exists, else by the patience evidence (nearest "
            "measured round for controls); K=15 at the K=10 per-network cost; MLflow/DVC "
            "bookkeeping not included"
        ),
    }


def _condition(
    p: Any,
    cond: str,
    k: int,
    rounds: list[int],
    costs: dict[int, UnitCosts],
    startup: dict[str, float],
    profile: StopProfile | None,
) -> dict[str, Any]:
    """The stages of one condition, each a stack of K priced by `stage_seconds`."""
    from lottery.study.train import to_horizon

    t = p.train
    base = costs[max(c for c in costs if c <= k)]
    cost = base.scaled(k) if k != base.k else base
    n_test = n_test_evaluations(t.iterations, t.eval_every, t.test_every, k, profile)
    on = to_horizon(p, cond)
    seconds = 0.0
    for rnd in rounds:
        settled = profile.settled_at(cond, rnd) if (profile and t.patience) else [1.0]
        seconds += stage_seconds(t, cost, StageShape.of(settled, k, on), n_test, startup)
    return {
        "stages": len(rounds),
        "k": k,
        "trains_to_horizon": on,
        "total_s": seconds,
        "mean_stage_s": seconds / len(rounds),
    }


def _measured(measured: tuple[str, Wallclock] | None, estimate_s: float) -> dict[str, Any] | None:
    """A kept study's measured wall-clock, and the estimate over it."""
    if measured is None:
        return None
    study, w = measured
    return {
        "study": study,
        "seconds": w.seconds,
        "machine": w.machine,
        "commit": w.commit,
        "started": w.started,
        "finished": w.finished,
        "estimate_over_measured": estimate_s / w.seconds,
    }
