"""The study's stages as library functions: prepare, init, train a round, visualise, report.

Each DVC stage script calls exactly one function here, with the project root: every path
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
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lottery import io, lineage, paths
from lottery.arch import Architecture, glorot_normal_init
from lottery.data import Split, load_split
from lottery.data import prepare as prepare_data
from lottery.masks import (
    Mask,
    Weights,
    density,
    load_mask,
    load_weights,
    mask_hash,
    ones_mask,
    percent_remaining,
    save_mask,
    save_weights,
    weights_hash,
)
from lottery.params import Params
from lottery.pruning import cumulative_rate, kernels_of, prune_magnitude, random_mask_like

#: Fixed ids that keep the seed streams of different purposes apart.
_STREAM = {"theta0": 0, "ticket": 1, "reinit": 2, "random": 3, "random_mask": 4}
SUMMARY_KEYS = (
    "early_stop_iteration",
    "test_accuracy_at_early_stop",
    "test_accuracy_at_stop",
    "stop_iteration",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rng_for(seed: int, stream: str, *parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAM[stream], *parts]))


def seed_for(seed: int, stream: str, *parts: int) -> int:
    return int(np.random.SeedSequence([seed, _STREAM[stream], *parts]).generate_state(1)[0])


def dvc_stage_name(condition: str, name: str) -> str:
    if condition == "ticket" and name == paths.round_name(0):
        return "dense"
    return os.environ.get("DVC_STAGE") or f"{condition}@{name}"


# ---------------------------------------------------------------- prepare and init


def prepare(params: Params, root: Path) -> dict[str, Any]:
    d = params.data
    lay = paths.Layout(root)
    manifest = prepare_data(
        lay.dataset_dir(d.dataset),
        lay.prepared_dir(),
        d.validation_size,
        d.stratified,
        d.split_seed,
        dataset=d.dataset,
    )
    log(f"prepared {d.dataset} split: {manifest.get('sizes', manifest)}")
    return manifest


def init(params: Params, root: Path) -> None:
    """Draw θ0 once per trial (Glorot normal, biases zero) and the all-ones mask m_0, both
    of the network `model` names on the dataset's images (`Params.architecture`)."""

    net = params.architecture()
    lay = paths.Layout(root)
    for t in range(params.study.trials):
        theta0 = glorot_normal_init(rng_for(params.study.seed, "theta0", t), net)
        save_weights(lay.theta0_path(t), theta0, arch=net)
        theta_sha = weights_hash(theta0, arch=net)
        io.write_json(
            lay.theta0_path(t).with_suffix(".json"),
            {"sha256": theta_sha, "trial": t, "seed": params.study.seed, "init": "glorot_normal"},
        )
        m0 = ones_mask(net)
        save_mask(lay.initial_mask_path(t), m0, arch=net)
        lineage.write(
            lay.initial_mask_path(t),
            lineage.Lineage.of(
                m0,
                arch=net,
                round=0,
                trial=t,
                condition="ticket",
                theta0_sha256=theta_sha,
                dvc_stage="init",
            ),
        )
        log(f"trial {t}: θ0 sha256 {theta_sha[:16]}…")


# ---------------------------------------------------------------- the networks of a stage


@dataclass
class Net:
    """One network a stage trains: from `init` weights, with `mask`, on its data order."""

    key: str
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


def _nets(lay: paths.Layout, params: Params, condition: str, rnd: int) -> list[Net]:
    return [
        n for t in range(params.study.trials) for n in _trial_nets(lay, params, condition, rnd, t)
    ]


def _next_mask(
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


# ---------------------------------------------------------------- training a stage


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
    from lottery.training import TrainConfig

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
    """The params every run logs: all but the generated pipeline lists."""
    from lottery import tracking

    flat = tracking.flatten(params.as_dict())
    return {k: v for k, v in flat.items() if not k.startswith("pipeline.")}


def _open_recorder(params: Params, stage: str) -> Any:
    """The study's MLflow recorder, with the runs of a killed earlier attempt marked FAILED."""
    from lottery import tracking

    recorder = tracking.StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    stale = recorder.fail_stale_runs(stage)
    if stale:
        log(f"marked {len(stale)} run(s) of a killed earlier attempt as FAILED: {', '.join(stale)}")
    return recorder


def _start_runs(
    st: Stage, recorder: Any, nets: Sequence[Net], setting: dict[str, str]
) -> dict[str, str]:
    """One MLflow child run per network, tagged with its lineage and setting; run ids by key."""
    return {
        net.key: recorder.start_child(
            f"{st.condition}-{st.name}-{net.key}",
            _run_tags(st.params, net, st.dvc_stage, st.git_commit, setting),
        )
        for net in nets
    }


def train_stage(params: Params, condition: str, name: str, root: Path) -> dict[str, Any]:
    """Train every network of one (condition, round) stage and write its outputs."""
    from lottery import tracking
    from lottery.training import Engine, device_name

    lay = paths.Layout(root)
    st = Stage(
        lay, params, condition, name, dvc_stage_name(condition, name), tracking.git_revision()
    )
    recorder = _open_recorder(params, st.dvc_stage)
    split, split_sha = _stage_split(lay, params.architecture())  # before any run starts
    nets = _nets(lay, params, condition, st.rnd)
    device = device_name()
    run_ids = _start_runs(st, recorder, nets, _setting(params, device, len(nets)))
    log(
        f"{st.dvc_stage}: training {len(nets)} {nets[0].arch.describe()} network(s) on "
        f"{device} ({percent_remaining(nets[0].mask, arch=nets[0].arch):.2f}% of weights "
        f"remaining), {params.train.iterations} iterations, MLflow {recorder.uri}"
    )
    ok = False
    try:
        started = time.perf_counter()
        cfg = _train_config(params, condition, st.rnd)
        engine = Engine(split, len(nets), cfg, architecture=nets[0].arch)
        live = recorder.live_curves([run_ids[n.key] for n in nets])  # curves while it trains
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
        out = _write_outputs(st, nets, results, run_ids)
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
        rid = run_ids[net.key]
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
        recorder.log_artifacts(rid, out.artifacts[net.key])
        recorder.log_tags(
            rid,
            {**out.run_tags.get(net.key, {}), lineage.tag("stop_reason"): res.stop_reason},
        )


def _log_done(stage: str, summary: dict[str, dict[str, float]], seconds: float) -> None:
    log(
        f"{stage}: early stop {summary['early_stop_iteration']['mean']:.0f}, "
        f"test acc {summary['test_accuracy_at_early_stop']['mean'] * 100:.2f}%, "
        f"stopped at {summary['stop_iteration']['mean']:.0f} "
        f"({seconds:.0f}s)"
    )


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
    nxt = _next_mask(lay, st.params, rnd, res.weights, net.mask, net.trial)
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
        init_file = st.lay.start_weights_path(st.condition, st.name, net.key)
        save_weights(init_file, net.init, arch=net.arch)
        files.append((init_file, "weights"))
    mpath = st.lay.control_mask_path(st.condition, st.name, net.key)
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


def _write_outputs(
    st: Stage, nets: Sequence[Net], results: Sequence[Any], run_ids: dict[str, str]
) -> StageOutputs:
    """Every network's weights, masks and lineage, then the stage's curves file."""
    runs: dict[str, dict[str, Any]] = {}
    curves: dict[str, Any] = {}
    artifacts: dict[str, list[tuple[Path, str]]] = {}
    run_tags: dict[str, dict[str, str]] = {}
    for net, res in zip(nets, results, strict=True):
        trained_file = st.lay.trained_path(st.condition, st.name, net.key)
        save_weights(trained_file, res.weights, arch=net.arch)
        files: list[tuple[Path, str]] = [(trained_file, "weights")]
        if st.condition == "ticket":
            own, run_tags[net.key] = _write_ticket(st, net, res, run_ids[net.key])
        else:
            own = _write_control(st, net, res, run_ids[net.key])
        artifacts[net.key] = files + own
        runs[net.key] = _run_metrics(net, res)
        curves[net.key] = res.curves
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


# ---------------------------------------------------------------- figures and report


def round_names(params: Params) -> list[str]:
    return [paths.round_name(0), *params.pipeline.rounds]


def load_metrics(params: Params, root: Path) -> list[dict[str, Any]]:
    """The metrics files of the pipeline's stages, in today's schema (`lottery.results`)."""
    from lottery import results

    lay = paths.Layout(root)
    defaults = {
        "eval_every": params.train.eval_every,
        "iterations": params.train.iterations,
        "patience": int(getattr(params.train, "patience", 0) or 0),
    }
    names = [("ticket", n) for n in round_names(params)]
    names += [("reinit", n) for n in params.pipeline.reinit_rounds]
    names += [("random", n) for n in params.pipeline.random_rounds]
    return [
        results.normalise(io.read_json(lay.metrics_path(cond, n)), defaults) for cond, n in names
    ]


def load_curves(params: Params, root: Path) -> dict[str, dict[int, dict[str, Any]]]:
    lay = paths.Layout(root)
    curves: dict[str, dict[int, dict[str, Any]]] = {}
    for m in load_metrics(params, root):
        curves.setdefault(m["condition"], {})[m["round"]] = io.read_json(
            lay.curves_path(m["condition"], paths.round_name(int(m["round"])))
        )
    return curves


def visualise(params: Params, root: Path) -> dict[str, Path]:
    from lottery import plots

    lay, net = paths.Layout(root), params.architecture()
    rounds = range(params.study.rounds + 1)
    masks = {
        k: {t: load_mask(lay.round_mask_path(k, t), arch=net) for t in range(params.study.trials)}
        for k in rounds
    }
    figures = plots.render_all(
        masks, load_metrics(params, root), load_curves(params, root), lay.figures_dir(), net
    )
    log(f"wrote {len(figures)} figures to {paths.figures_dir()}")
    return figures


def _artifact_dir(top: str, rel: Path) -> str:
    return top if rel == Path(".") else f"{top}/{rel.as_posix()}"


def report(params: Params, root: Path) -> Path:
    """The Markdown report, the DVC plots tables and the top-level summary metrics."""
    import pandas as pd

    from lottery import plots, results, tracking
    from lottery import report as rep

    lay = paths.Layout(root)
    metrics = load_metrics(params, root)
    runs = results.runs_frame(metrics)
    figures = rep.figure_order(lay.figures_dir())
    settings = {k: v for k, v in params.as_dict().items() if k != "pipeline"}
    text = rep.render_report(
        runs, figures, settings, params.study_hash(), tracking.git_revision(), lay.reports.resolve()
    )
    rep.write_outputs(
        runs,
        text,
        rep.summary_for(runs, settings),
        lay.report_path(),
        lay.plots_dir(),
        lay.summary_metrics_path(),
    )
    curves = load_curves(params, root)
    frames = [results.curves_frame(curves[m["condition"]][m["round"]], m) for m in metrics]
    plots.write_dvc_plot_tables(
        plots.dvc_curve_rows(pd.concat(frames, ignore_index=True), runs), lay.plots_dir()
    )
    _record_report(lay, params, figures)
    log(f"wrote {paths.report_path()} ({len(metrics)} metrics files, {len(figures)} figures)")
    return lay.report_path()


def _record_report(lay: paths.Layout, params: Params, figures: dict[str, Path]) -> None:
    """The study's parent run holds the headline numbers, the report and the figures."""
    from lottery import tracking

    recorder = tracking.StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    summary = io.read_json(lay.summary_metrics_path())
    headline = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    recorder.log_summary(recorder.parent_id, headline)
    fig_root = lay.figures_dir().resolve()
    recorder.log_artifacts(
        recorder.parent_id,
        [
            (lay.report_path(), "report"),
            (lay.summary_metrics_path(), "report"),
            *(
                (p, _artifact_dir("figures", p.parent.relative_to(fig_root)))
                for p in figures.values()
            ),
        ],
    )
