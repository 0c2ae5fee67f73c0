"""A training stage's outputs: masks, weights, lineage sidecars and metrics, each written
atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lottery.core import io, lineage, paths
from lottery.core.masks import (
    Weights,
    density,
    mask_hash,
    percent_remaining,
    save_mask,
    save_weights,
    weights_hash,
)
from lottery.core.params import Params
from lottery.study.common import SUMMARY_KEYS
from lottery.study.nets import Net, Stage, next_mask

# ---------------------------------------------------------------- a stage's outputs


@dataclass
class StageOutputs:
    """What a stage wrote: its metrics, each run's artifacts and each run's closing tags."""

    metrics: dict[str, Any]
    artifacts: dict[str, list[tuple[Path, str]]]
    run_tags: dict[str, dict[str, str]]


def _pruning_record(params: Params) -> dict[str, Any]:
    """The pruning settings a ticket's next mask records in its lineage."""
    p = params.prune
    return {
        "point": p.point,
        "strategy": p.strategy,
        "scope": p.scope,
        "rates": p.rates,
        "global_rate": p.global_rate,
        "global_exclude": p.global_exclude,
        "rewind_iteration": p.rewind_iteration,
    }


def _made_by(st: Stage, net: Net, trained: Weights, run_id: str) -> dict[str, Any]:
    """The lineage fields of a mask that say which run, stage and code produced it."""
    return {
        "trial": net.trial,
        "theta0_sha256": str(net.source.theta0_sha256),
        "init_sha256": net.init_sha256,
        "trained_sha256": weights_hash(trained, arch=net.arch),
        "mlflow_run_id": run_id,
        "dvc_stage": st.dvc_stage,
        "git_commit": st.git_commit,
        "study_hash": st.params.study_hash(),
    }


def _write_ticket(
    st: Stage, net: Net, res: Any, run_id: str
) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """A ticket's next mask m_{k+1} with its lineage (and, in round 0, θ_j and the dense
    weights); the files its run logs and its closing tags."""
    lay, rnd = st.lay, st.rnd
    files: list[tuple[Path, str]] = []
    if rnd == 0:
        _write_dense(lay, st.params, net, res, run_id, st.git_commit)
        files += [
            (lay.rewind_path(net.trial), "weights"),
            (lay.rewind_path(net.trial).with_suffix(".json"), "weights"),
        ]
    nxt = next_mask(lay, st.params, rnd, res.weights, net.mask, net.trial)
    nxt_path = lay.next_mask_path(st.name, net.trial)
    save_mask(nxt_path, nxt, arch=net.arch)
    record = lineage.Lineage.of(
        nxt,
        arch=net.arch,
        round=rnd + 1,
        condition="ticket",
        parent_sha256=mask_hash(net.mask, arch=net.arch),
        parent_path=str(paths.round_mask_path(rnd, net.trial)),
        pruning=_pruning_record(st.params),
        pruned_from={"point": st.params.prune.point, "iteration": int(res.weights_iteration)},
        **_made_by(st, net, res.weights, run_id),
    )
    lineage.write(nxt_path, record)
    files += [(nxt_path, "mask"), (nxt_path.with_suffix(".json"), "mask")]
    tags = lineage.RunTags(
        next_mask_sha256=record.sha256,
        pruned_from_point=st.params.prune.point,
        pruned_from_iteration=int(res.weights_iteration),
    )
    return files, tags.as_tags()


def _write_control(st: Stage, net: Net, res: Any, run_id: str) -> list[tuple[Path, str]]:
    """A control's mask with its lineage (and the reinit's own θ0'); the files its run logs."""
    files: list[tuple[Path, str]] = []
    if st.condition == "reinit":
        init_file = st.lay.start_weights_path(st.condition, st.name, net.run_key)
        save_weights(init_file, net.init, arch=net.arch)
        files.append((init_file, "weights"))
    mpath = st.lay.control_mask_path(st.condition, st.name, net.run_key)
    save_mask(mpath, net.mask, arch=net.arch)
    lineage.write(
        mpath,
        lineage.Lineage.of(
            net.mask,
            arch=net.arch,
            round=st.rnd,
            repeat=net.repeat,
            condition=st.condition,
            parent_sha256=net.source.source_mask_sha256,
            parent_path=net.source.source_mask_path,
            **_made_by(st, net, res.weights, run_id),
        ),
    )
    return [*files, (mpath, "mask"), (mpath.with_suffix(".json"), "mask")]


def _run_metrics(net: Net, res: Any) -> dict[str, Any]:
    """One network's entry in the stage's metrics file."""
    return {
        "trial": net.trial,
        "repeat": net.repeat or 0,
        "percent_remaining": percent_remaining(net.mask, arch=net.arch),
        **res.summary,
        "early_stop_iteration": int(res.early_stop_iteration),
        "stop_iteration": int(res.stop_iteration),
        "stop_reason": res.stop_reason,
    }


def _stage_metrics(
    st: Stage, nets: Sequence[Net], runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    t = st.params.train
    return {
        "round": st.rnd,
        "condition": st.condition,
        "percent_remaining": float(np.mean([r["percent_remaining"] for r in runs.values()])),
        "iterations": t.iterations,
        "eval_every": t.eval_every,
        "patience": t.patience,
        "density": density(nets[0].mask, arch=nets[0].arch),
        "runs": runs,
        "summary": _aggregate(runs),
    }


def write_outputs(
    st: Stage, nets: Sequence[Net], results: Sequence[Any], run_ids: dict[str, str]
) -> StageOutputs:
    """Every network's weights, masks and lineage, then the stage's curves file."""
    runs: dict[str, dict[str, Any]] = {}
    curves: dict[str, Any] = {}
    artifacts: dict[str, list[tuple[Path, str]]] = {}
    run_tags: dict[str, dict[str, str]] = {}
    for net, res in zip(nets, results, strict=True):
        trained_file = st.lay.trained_path(st.condition, st.name, net.run_key)
        save_weights(trained_file, res.weights, arch=net.arch)
        files: list[tuple[Path, str]] = [(trained_file, "weights")]
        if st.condition == "ticket":
            own, run_tags[net.run_key] = _write_ticket(st, net, res, run_ids[net.run_key])
        else:
            own = _write_control(st, net, res, run_ids[net.run_key])
        artifacts[net.run_key] = files + own
        runs[net.run_key] = _run_metrics(net, res)
        curves[net.run_key] = res.curves
    curves_file = st.lay.curves_path(st.condition, st.name)
    io.write_json(curves_file, {"round": st.rnd, "condition": st.condition, "runs": curves})
    for key in artifacts:
        artifacts[key].append((curves_file, "curves"))
    return StageOutputs(_stage_metrics(st, nets, runs), artifacts, run_tags)


def _write_dense(
    lay: paths.Layout, params: Params, net: Net, res: Any, run_id: str, git_commit: str
) -> None:
    """Round 0 also saves what later rounds start from: θ_j and the dense trained weights."""
    j = params.prune.rewind_iteration
    rewind = res.rewind if res.rewind is not None else net.init
    save_weights(lay.rewind_path(net.trial), rewind, arch=net.arch)
    io.write_json(
        lay.rewind_path(net.trial).with_suffix(".json"),
        {
            "sha256": weights_hash(rewind, arch=net.arch),
            "rewind_iteration": j,
            "trial": net.trial,
            "theta0_sha256": net.source.theta0_sha256,
            "mlflow_run_id": run_id,
            "git_commit": git_commit,
        },
    )
    save_weights(lay.dense_trained_path(net.trial), res.weights, arch=net.arch)


def _aggregate(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in SUMMARY_KEYS:
        values = np.array([r[key] for r in runs.values()], dtype=float)
        out[key] = {
            "mean": float(values.mean()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return out
