"""Training stages (`dense`, `ticket@rNN`, `reinit@rNN`, `random@rNN`): one round's networks.

Each DVC stage script calls exactly one function of this package, with the project root: every path
comes from `paths.Layout(root)`, never from the working directory. A training stage trains every
network it owns (all trials, and reinit repeats) together in one stacked engine, writes
its outputs atomically, and records one MLflow child run per network.

Round k (condition "ticket") trains m_k ⊙ θ_j (θ_j = θ0 unless rewinding) and prunes to
m_{k+1}; the reinit control trains m_k from a fresh init; the random-prune control trains
a random mask with m_k's per-layer density from θ_j.

The network is the one `model` names on the dataset's images (`Params.architecture`): θ0,
every mask and weights file, pruning (per-layer rates, `Params.layer_rates`), the engine and
the figures all take it, so LeNet-300-100, any `mlp` and Conv-2/4/6 train the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lottery.core import io, lineage, paths
from lottery.core.arch import Architecture
from lottery.core.machine import describe, threads
from lottery.core.masks import (
    density,
    mask_hash,
    percent_remaining,
)
from lottery.core.params import Params
from lottery.data.split import Split, load_split
from lottery.study.common import dvc_stage_name, log
from lottery.study.nets import Net, Stage, stage_nets
from lottery.study.outputs import StageOutputs, write_outputs

# ---------------------------------------------------------------- training a stage


def _run_tags(
    params: Params, net: Net, stage: str, git_commit: str, extra: dict[str, str]
) -> dict[str, str]:
    """The MLflow tags a network's run starts with: its lineage fields, then the setting."""
    tags = replace(
        net.source,
        dvc_stage=stage,
        mask_sha256=mask_hash(net.mask, arch=net.arch),
        init_sha256=net.init_sha256,
        study_hash=params.study_hash(),
        git_commit=git_commit,
    ).as_tags()
    tags.update({lineage.tag(k): v for k, v in extra.items()})
    tags[lineage.tag("density")] = f"{density(net.mask, arch=net.arch)['overall']:.6f}"
    tags[lineage.tag("percent_remaining")] = f"{percent_remaining(net.mask, arch=net.arch):.4f}"
    return tags


def _train_config(params: Params, condition: str, rnd: int) -> Any:
    """The engine's settings; only the dense round (ticket r00) keeps θ_j for rewinding."""
    from lottery.engine.training import TrainConfig

    t = params.train
    rewind = params.prune.rewind_iteration if (condition == "ticket" and rnd == 0) else None
    return TrainConfig(
        t.iterations,
        t.batch_size,
        t.learning_rate,
        t.eval_every,
        rewind,
        patience=t.patience,
        test_every=t.test_every,
        keep="best" if params.prune.point == "early_stop" else "last",
        adam_epsilon=t.adam_epsilon,
    )


def to_horizon(params: Params, condition: str) -> bool:
    """Whether a network trains to `train.iterations` whatever the patience: with the
    pruning point `horizon`, a ticket's (and the dense network's) weights at the horizon
    are what the next round prunes (and θ_j is read on the way). Controls feed nothing, and
    with `early_stop` the weights to prune are settled once the minimum is."""
    return params.prune.point == "horizon" and condition == "ticket"


def _setting(params: Params, device: str, n_nets: int) -> dict[str, str]:
    """Tags that say how a stage's networks were trained (not part of their lineage)."""
    setting = {
        "device": device,
        "cpu": describe(),  # bits are reproducible on a CPU of the same family
        "threads": str(threads()),  # ... and with the same intra-op pool
        "n_stacked": str(n_nets),
        "point": params.prune.point,
        "strategy": params.prune.strategy,
        "scope": params.prune.scope,
        "rewind_iteration": str(params.prune.rewind_iteration),
    }
    if os.environ.get("DVC_EXP_NAME"):
        setting["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return setting


def _logged_params(params: Params) -> dict[str, Any]:
    """The params every run logs: every key of params.yaml."""
    from lottery.tracking.context import flatten

    return flatten(params.as_dict())


def _open_recorder(params: Params, stage: str) -> Any:
    """The study's MLflow recorder, with the runs of a killed earlier attempt marked FAILED."""
    from lottery.tracking.recorder import StudyRecorder

    recorder = StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    stale = recorder.fail_stale_runs(stage)
    if stale:
        log(f"marked {len(stale)} run(s) of a killed earlier attempt as FAILED: {', '.join(stale)}")
    return recorder


def _start_runs(
    st: Stage, recorder: Any, nets: Sequence[Net], setting: dict[str, str]
) -> dict[str, str]:
    """One MLflow child run per network, tagged with its lineage and setting; run ids by key."""
    return {
        net.run_key: recorder.start_child(
            f"{st.condition}-{st.name}-{net.run_key}",
            _run_tags(st.params, net, st.dvc_stage, st.git_commit, setting),
        )
        for net in nets
    }


def train_stage(params: Params, condition: str, name: str, root: Path) -> dict[str, Any]:
    """Train every network of one (condition, round) stage and write its outputs."""
    from lottery.engine.training import Engine, device_name

    lay = paths.Layout(root)
    st = Stage(lay, params, condition, name, dvc_stage_name(condition, name), io.git_revision())
    recorder = _open_recorder(params, st.dvc_stage)
    split, split_sha = _stage_split(lay, params.architecture())  # before any run starts
    nets = stage_nets(lay, params, condition, st.rnd)
    device = device_name()
    run_ids = _start_runs(st, recorder, nets, _setting(params, device, len(nets)))
    pool = "" if "GPU" in device.upper() else f" with {threads()} threads"
    log(
        f"{st.dvc_stage}: training {len(nets)} {nets[0].arch.describe()} network(s) on "
        f"{device}{pool} ({percent_remaining(nets[0].mask, arch=nets[0].arch):.2f}% of weights "
        f"remaining), {params.train.iterations} iterations, MLflow {recorder.uri}"
    )
    ok = False
    try:
        started = time.perf_counter()
        cfg = _train_config(params, condition, st.rnd)
        engine = Engine(split, len(nets), cfg, arch=nets[0].arch)
        live = recorder.live_curves([run_ids[n.run_key] for n in nets])  # curves while it trains
        results = engine.train(
            [n.init for n in nets],
            [n.mask for n in nets],
            [n.data_seed for n in nets],
            progress=log,
            label=f"[{st.dvc_stage}] ",
            on_evaluation=live,
            to_horizon=[to_horizon(params, condition)] * len(nets),
        )
        live.flush()
        seconds = time.perf_counter() - started
        out = write_outputs(st, nets, results, run_ids)
        _record_runs(st, recorder, nets, results, run_ids, out, seconds, split_sha)
        ok = True
    finally:
        for rid in run_ids.values():
            recorder.end(rid, ok)
    metrics = out.metrics
    io.write_json(lay.metrics_path(condition, name), metrics)  # last: the stage is done
    _log_done(st.dvc_stage, metrics["summary"], seconds)
    return metrics


def _stage_split(lay: paths.Layout, net: Architecture) -> tuple[Split, str]:
    """The prepared split and its SHA-256, checked to hold the images `net` takes."""
    split = load_split(lay.prepared_dir())
    split.require_image_shape(net.input_shape, net.describe())
    return split, str(io.read_json(lay.prepared_dir() / "manifest.json")["split_sha256"])


def _record_runs(
    st: Stage,
    recorder: Any,
    nets: Sequence[Net],
    results: Sequence[Any],
    run_ids: dict[str, str],
    out: StageOutputs,
    seconds: float,
    split_sha: str,
) -> None:
    """Each network's run gets its params, summary, dataset, artifacts and closing tags."""
    flat_params = _logged_params(st.params)
    for net, res in zip(nets, results, strict=True):
        rid = run_ids[net.run_key]
        recorder.log_params(rid, flat_params)
        recorder.log_summary(
            rid,
            {
                **res.summary,
                "percent_remaining": percent_remaining(net.mask, arch=net.arch),
                "train_seconds": seconds,
            },
        )
        recorder.log_dataset(
            rid, f"{st.params.data.dataset}-split", split_sha, str(paths.prepared_dir())
        )
        recorder.log_artifacts(rid, out.artifacts[net.run_key])
        recorder.log_tags(
            rid,
            {**out.run_tags.get(net.run_key, {}), lineage.tag("stop_reason"): res.stop_reason},
        )


def _log_done(stage: str, summary: dict[str, dict[str, float]], seconds: float) -> None:
    log(
        f"{stage}: early stop {summary['early_stop_iteration']['mean']:.0f}, "
        f"test acc {summary['test_accuracy_at_early_stop']['mean'] * 100:.2f}%, "
        f"stopped at {summary['stop_iteration']['mean']:.0f} "
        f"({seconds:.0f}s)"
    )
