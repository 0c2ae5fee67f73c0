"""The paper estimate's cost model, priced by hand: under `prune.point: horizon` the dense
network and every ticket train to the horizon and are evaluated until their early stop
settles, the controls stop where they settle; under `early_stop` every network stops
there; with patience 0 everything runs to the horizon. Also the FLOPs count and the test
evaluations of a stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lottery.bench.derive import flops_per_net_iteration
from lottery.bench.estimate import (
    StageShape,
    UnitCosts,
    n_test_evaluations,
    paper_estimate,
    stage_seconds,
)
from lottery.bench.profile import StopProfile
from lottery.core.params import load_params

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "presets" / "paper.yaml"

#: Per-stack costs proportional to K: at K = 5 a chunk is 0.5 s, a validation 0.1 s, a
#: test 0.2 s; the K = 15 reinit stack is priced at K = 10's per network (1.5, 0.3, 0.6).
COSTS = {k: UnitCosts(k, chunk_s=0.1 * k, val_s=0.02 * k, test_s=0.04 * k) for k in (1, 5, 10)}
STARTUP = {"stage_overhead_s": 8.0, "compile_train_s": 1.0, "compile_eval_s": 0.5}
#: Every network settles half-way (25,000 of 50,000 iterations); no new minima, so the
#: test set is evaluated on the test_every grid only (10 times).
HALF = StopProfile("test", 5000, {"ticket": {0: [0.5, 0.5]}}, [[] for _ in range(5)])


def preset(tmp_path: Path, name: str, **changes: dict[str, Any]) -> Path:
    """presets/paper.yaml with some sections changed."""
    raw = yaml.safe_load(PAPER.read_text())
    for section, values in changes.items():
        raw[section].update(values)
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def totals(estimate: dict[str, Any]) -> dict[str, float]:
    return {c: v["total_s"] for c, v in estimate["conditions"].items()}


def test_the_plan_is_the_presets() -> None:
    p = load_params(PAPER)
    est = paper_estimate(COSTS, STARTUP, HALF, PAPER)
    c = est["conditions"]
    assert (c["ticket"]["stages"], c["ticket"]["k"]) == (p.study.rounds + 1, p.study.trials)
    assert c["reinit"]["k"] == p.study.trials * p.controls.reinit_repeats == 15
    assert (c["random"]["stages"], c["random"]["k"]) == (p.study.rounds, p.study.trials)
    assert est["measured"] is None and est["point"] == "horizon"


def test_without_patience_every_network_runs_to_the_horizon(tmp_path: Path) -> None:
    """500 chunks of training and validation per stage; every evaluation tested without
    the evidence's minima, the grid only with them; nothing settles, nothing recompiles."""
    full = preset(tmp_path, "full", train={"patience": 0})
    blind = totals(paper_estimate(COSTS, STARTUP, None, full))
    assert blind["ticket"] == pytest.approx(16 * (8 + 500 * (0.5 + 0.1) + 500 * 0.2))
    seen = totals(paper_estimate(COSTS, STARTUP, HALF, full))
    assert seen["ticket"] == pytest.approx(16 * (8 + 300 + 10 * 0.2))
    assert seen["reinit"] == pytest.approx(15 * (8 + 500 * (1.5 + 0.3) + 10 * 0.6))


def test_tickets_train_to_the_horizon_and_controls_stop_where_they_settle(tmp_path: Path) -> None:
    """prune.point horizon, every network settling half-way. A ticket stage: all 500
    chunks trained, 250 validated, one more validation at the horizon, 10 tests, and an
    evaluation recompiled at each of the 4 settles that leave the stack evaluating fewer
    networks. A control stage: 250 chunks trained and validated, and 4 (random, K = 5) or
    14 (reinit, K = 15) rebuilds of the stack (training step and evaluation)."""
    est = paper_estimate(COSTS, STARTUP, HALF, preset(tmp_path, "half", train={"patience": 5000}))
    got = totals(est)
    assert got["ticket"] == pytest.approx(16 * (8 + 500 * 0.5 + 250 * 0.1 + 0.1 + 2 + 4 * 0.5))
    assert got["random"] == pytest.approx(15 * (8 + 250 * (0.5 + 0.1) + 2 + 4 * 1.5))
    assert got["reinit"] == pytest.approx(15 * (8 + 250 * (1.5 + 0.3) + 6 + 14 * 1.5))
    flags = {c: v["trains_to_horizon"] for c, v in est["conditions"].items()}
    assert flags == {"ticket": True, "reinit": False, "random": False}
    assert est["total_s"] == pytest.approx(sum(got.values()))
    assert est["total_h"] == pytest.approx(est["total_s"] / 3600)


def test_with_early_stop_pruning_the_tickets_stop_too(tmp_path: Path) -> None:
    path = preset(tmp_path, "es", train={"patience": 5000}, prune={"point": "early_stop"})
    est = paper_estimate(COSTS, STARTUP, HALF, path)
    assert est["point"] == "early_stop"
    assert totals(est)["ticket"] == pytest.approx(16 * (8 + 250 * (0.5 + 0.1) + 2 + 4 * 1.5))
    assert not any(c["trains_to_horizon"] for c in est["conditions"].values())


def test_a_stage_where_some_networks_reach_the_horizon_unsettled() -> None:
    """Half the networks settle half-way, half never: on average 3/4 of the horizon
    validated; K x 1/2 = 2.5 settles change the stack; the horizon's last validation
    covers the half that settled early. A stack that stops while some network reaches
    the horizon needs a rebuild at every stop."""
    train = load_params(PAPER).train
    on = StageShape.of([0.5, 1.0], 5, trains_on=True)
    assert (on.evaluated, on.trained, on.early, on.changes) == (0.75, 1.0, 0.5, 2.5)
    cost = COSTS[5]
    got = stage_seconds(train, cost, on, 10, STARTUP)
    assert got == pytest.approx(8 + 500 * (0.5 + 0.1 * 0.75) + 0.1 * 0.5 + 2 + 2.5 * 0.5)
    off = StageShape.of([0.5, 1.0], 5, trains_on=False)
    assert (off.trained, off.changes) == (0.75, 2.5)
    got = stage_seconds(train, cost, off, 10, STARTUP)
    assert got == pytest.approx(8 + 500 * 0.75 * (0.5 + 0.1) + 2 + 2.5 * 1.5)


def test_pricing_a_patience_needs_the_evidence() -> None:
    with pytest.raises(ValueError, match="patience evidence"):
        paper_estimate(COSTS, STARTUP, None, PAPER)


def test_flops_per_net_iteration_counts_lenet_by_hand() -> None:
    # LeNet-300-100: 784*300 + 300*100 + 100*10 = 266,200 multiply-adds per example.
    f = flops_per_net_iteration(batch_size=60, n_eval=15_000, eval_every=100)
    assert f["forward"] == 2 * 60 * 266_200
    # kernel gradients (= forward) + activation gradients of fc2 and out (not of the input)
    assert f["backward"] == 2 * 60 * 266_200 + 2 * 60 * (300 * 100 + 100 * 10)
    assert f["evaluation"] == 2 * 15_000 * 266_200 / 100
    assert f["total"] == f["forward"] + f["backward"] + f["evaluation"]
    assert 0.53 < f["evaluation"] / f["total"] < 0.55  # why evaluation can't be <= 25% of time


def test_test_evaluations_are_the_union_over_a_stack() -> None:
    """A stack tests where any of its networks reaches a new minimum, on the test_every
    grid and at the horizon: measured on stacks of K evidence runs."""
    runs = [[100, 200, 300], [100, 200, 400], [100, 500], [100, 200]]
    profile = StopProfile("test", 0, {"ticket": {0: [1.0]}}, runs)
    # K=2: stacks {100,200,300,400} and {100,200,500}, plus the grid {500, 1000}.
    assert n_test_evaluations(1000, 100, 500, 2, profile) == (6 + 4) / 2
    # K=1: per run, with the grid.
    assert n_test_evaluations(1000, 100, 500, 1, profile) == (5 + 5 + 3 + 4) / 4
    # Never more than one per evaluation; without evidence, every evaluation.
    assert n_test_evaluations(300, 100, 100, 4, profile) == 3
    assert n_test_evaluations(1000, 100, 500, 2, None) == 10
