"""The networks of a training stage: each one's mask, initial weights and lineage; the
stage being run; the next round's mask."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from lottery.core import lineage, paths
from lottery.core.arch import Architecture, glorot_normal_init
from lottery.core.masks import (
    Mask,
    Weights,
    load_mask,
    load_weights,
    mask_hash,
    ones_mask,
    weights_hash,
)
from lottery.core.params import Params
from lottery.core.pruning import cumulative_rate, kernels_of, prune_magnitude, random_mask_like
from lottery.study.common import rng_for, seed_for

# ---------------------------------------------------------------- the networks of a stage


@dataclass
class Net:
    """One network a stage trains: from `init` weights, with `mask`, on its data order."""

    run_key: str  # `t0`, or `t0-rep1` for a reinit repeat (paths.run_key)
    trial: int
    repeat: int | None
    mask: Mask
    init: Weights
    data_seed: int
    source: lineage.RunTags  # round, trial, condition, repeat and m_k it trains from
    arch: Architecture  # the network (every mask and weights dict is checked against it)

    @cached_property
    def init_sha256(self) -> str:
        return weights_hash(self.init, arch=self.arch)


def _rewind_weights(lay: paths.Layout, trial: int, net: Architecture) -> Weights:
    """θ_j: the weights every ticket of a trial is reset to (θ0 when j = 0)."""
    return load_weights(lay.rewind_path(trial), arch=net)


def _source(
    lay: paths.Layout, condition: str, rnd: int, trial: int, net: Architecture
) -> tuple[Mask, lineage.RunTags]:
    """m_k of a trial and what a run trained from it records (paths relative to the root)."""
    rel = paths.round_mask_path(rnd, trial)
    mask = load_mask(lay.root / rel, arch=net)
    return mask, lineage.RunTags(
        round=rnd,
        trial=trial,
        condition=condition,
        theta0_sha256=str(lineage.read_record(lay.root / rel)["theta0_sha256"]),
        source_mask_sha256=mask_hash(mask, arch=net),
        source_mask_path=str(rel),
    )


def _trial_nets(lay: paths.Layout, params: Params, condition: str, rnd: int, t: int) -> list[Net]:
    """The networks of trial `t` in a (condition, round) stage."""
    seed, net = params.study.seed, params.architecture()
    mask, source = _source(lay, condition, rnd, t, net)
    if condition == "ticket":
        init = (
            load_weights(lay.theta0_path(t), arch=net) if rnd == 0 else _rewind_weights(lay, t, net)
        )
        data_seed = seed_for(seed, condition, t, rnd)
        return [Net(paths.run_key(t), t, None, mask, init, data_seed, source, net)]
    if condition == "reinit":
        return [
            Net(
                paths.run_key(t, r),
                t,
                r,
                mask,
                glorot_normal_init(rng_for(seed, "reinit", t, rnd, r), net),
                seed_for(seed, condition, t, rnd, r),
                replace(source, repeat=r),
                net,
            )
            for r in range(params.controls.reinit_repeats)
        ]
    if condition == "random":
        init = _rewind_weights(lay, t, net)
        rmask = random_mask_like(mask, rng_for(seed, "random_mask", t, rnd), arch=net)
        data_seed = seed_for(seed, condition, t, rnd)
        return [Net(paths.run_key(t), t, None, rmask, init, data_seed, source, net)]
    raise ValueError(f"unknown condition {condition!r}")


def stage_nets(lay: paths.Layout, params: Params, condition: str, rnd: int) -> list[Net]:
    return [
        n for t in range(params.study.trials) for n in _trial_nets(lay, params, condition, rnd, t)
    ]


def next_mask(
    lay: paths.Layout, params: Params, rnd: int, trained: Weights, mask: Mask, trial: int
) -> Mask:
    """m_{k+1}: iterative prunes round k's survivors; one-shot prunes the dense network.

    Each layer is pruned at its rate from `Params.layer_rates` (by name, else by type);
    one-shot uses each layer's cumulative rate to round k+1."""
    p, net = params.prune, params.architecture()
    rates = params.layer_rates()
    if p.strategy == "iterative":
        kernels = kernels_of(trained, arch=net)
        return prune_magnitude(
            kernels, mask, rates, p.scope, p.global_rate, p.global_exclude, arch=net
        )
    dense = load_weights(lay.dense_trained_path(trial), arch=net) if rnd > 0 else trained
    return prune_magnitude(
        kernels_of(dense, arch=net),
        ones_mask(net),
        {layer: cumulative_rate(r, rnd + 1) for layer, r in rates.items()},
        p.scope,
        cumulative_rate(p.global_rate, rnd + 1),
        p.global_exclude,
        arch=net,
    )


@dataclass(frozen=True)
class Stage:
    """One (condition, round) stage being run: where it writes and what it records."""

    lay: paths.Layout
    params: Params
    condition: str
    name: str  # the round's name, r00, r01, …
    dvc_stage: str
    git_commit: str

    @property
    def rnd(self) -> int:
        return paths.parse_round(self.name)
