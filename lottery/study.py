"""The study's stages as library functions: prepare, init, train a round, visualise, report.

Each DVC stage script calls exactly one function here. A training stage trains every
network it owns (all trials, and reinit repeats) together in one stacked engine, writes
its outputs atomically, and records one MLflow child run per network.

Round k (condition "ticket") trains m_k ⊙ θ_j (θ_j = θ0 unless rewinding) and prunes to
m_{k+1}; the reinit control trains m_k from a fresh init; the random-prune control trains
a random mask with m_k's per-layer density from θ_j.
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
from lottery.arch import kernel_key
from lottery.data import load_split
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
from lottery.pruning import cumulative_rate, prune_magnitude, random_mask_like

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


def prepare(params: Params) -> dict[str, Any]:
    d = params.data
    manifest = prepare_data(
        paths.MNIST_DIR, paths.prepared_dir(), d.validation_size, d.stratified, d.split_seed
    )
    log(f"prepared MNIST split: {manifest.get('sizes', manifest)}")
    return manifest


def init(params: Params) -> None:
    """Draw θ0 once per trial (Glorot normal, biases zero) and the all-ones mask m_0."""
    from lottery.model import glorot_normal_init  # TensorFlow only where needed

    for t in range(params.study.trials):
        theta0 = glorot_normal_init(rng_for(params.study.seed, "theta0", t))
        save_weights(paths.theta0_path(t), theta0)
        theta_sha = weights_hash(theta0)
        io.write_json(
            paths.theta0_path(t).with_suffix(".json"),
            {"sha256": theta_sha, "trial": t, "seed": params.study.seed, "init": "glorot_normal"},
        )
        m0 = ones_mask()
        save_mask(paths.initial_mask_path(t), m0)
        lineage.write(
            paths.initial_mask_path(t),
            lineage.Lineage.of(
                m0, round=0, trial=t, condition="ticket", theta0_sha256=theta_sha, dvc_stage="init"
            ),
        )
        log(f"trial {t}: θ0 sha256 {theta_sha[:16]}…")


# ---------------------------------------------------------------- training stages


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

    @cached_property
    def init_sha256(self) -> str:
        return weights_hash(self.init)


def _rewind_weights(trial: int) -> Weights:
    """θ_j: the weights every ticket of a trial is reset to (θ0 when j = 0)."""
    return load_weights(paths.rewind_path(trial))


def _nets(params: Params, condition: str, rnd: int) -> list[Net]:
    seed = params.study.seed
    nets: list[Net] = []
    for t in range(params.study.trials):
        m_path = paths.round_mask_path(rnd, t)
        mask = load_mask(m_path)
        source = lineage.RunTags(
            round=rnd,
            trial=t,
            condition=condition,
            theta0_sha256=str(lineage.read_record(m_path)["theta0_sha256"]),
            source_mask_sha256=mask_hash(mask),
            source_mask_path=str(m_path),
        )
        if condition == "ticket":
            init = load_weights(paths.theta0_path(t)) if rnd == 0 else _rewind_weights(t)
            data_seed = seed_for(seed, condition, t, rnd)
            nets.append(Net(paths.run_key(t), t, None, mask, init, data_seed, source))
        elif condition == "reinit":
            from lottery.model import glorot_normal_init

            for r in range(params.controls.reinit_repeats):
                init = glorot_normal_init(rng_for(seed, "reinit", t, rnd, r))
                nets.append(
                    Net(
                        paths.run_key(t, r),
                        t,
                        r,
                        mask,
                        init,
                        seed_for(seed, condition, t, rnd, r),
                        replace(source, repeat=r),
                    )
                )
        elif condition == "random":
            init = _rewind_weights(t)
            rmask = random_mask_like(mask, rng_for(seed, "random_mask", t, rnd))
            data_seed = seed_for(seed, condition, t, rnd)
            nets.append(Net(paths.run_key(t), t, None, rmask, init, data_seed, source))
        else:
            raise ValueError(f"unknown condition {condition!r}")
    return nets


def _next_mask(params: Params, rnd: int, trained: Weights, mask: Mask, trial: int) -> Mask:
    """m_{k+1}: iterative prunes round k's survivors; one-shot prunes the dense network."""
    p = params.prune
    if p.strategy == "iterative":
        kernels = {layer: trained[kernel_key(layer)] for layer in mask}
        return prune_magnitude(kernels, mask, p.rates, p.scope, p.global_rate, p.global_exclude)
    dense = load_weights(paths.dense_trained_path(trial)) if rnd > 0 else trained
    kernels = {layer: dense[kernel_key(layer)] for layer in mask}
    rates = {layer: cumulative_rate(r, rnd + 1) for layer, r in p.rates.items()}
    return prune_magnitude(
        kernels,
        ones_mask(),
        rates,
        p.scope,
        cumulative_rate(p.global_rate, rnd + 1),
        p.global_exclude,
    )


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
        mask_sha256=mask_hash(net.mask),
        init_sha256=net.init_sha256,
        study_hash=params.study_hash(),
        git_commit=git_commit,
    ).as_tags()
    tags.update({lineage.tag(k): v for k, v in extra.items()})
    tags[lineage.tag("density")] = f"{density(net.mask)['overall']:.6f}"
    tags[lineage.tag("percent_remaining")] = f"{percent_remaining(net.mask):.4f}"
    return tags


def train_stage(params: Params, condition: str, name: str) -> dict[str, Any]:
    """Train every network of one (condition, round) stage and write its outputs."""
    from lottery import tracking
    from lottery.training import Engine, TrainConfig, device_name

    rnd = paths.parse_round(name)
    stage = dvc_stage_name(condition, name)
    recorder = tracking.StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    stale = recorder.fail_stale_runs(stage)
    if stale:
        log(f"marked {len(stale)} run(s) of a killed earlier attempt as FAILED: {', '.join(stale)}")
    split = load_split(paths.prepared_dir())
    manifest = io.read_json(paths.prepared_dir() / "manifest.json")
    nets = _nets(params, condition, rnd)
    t = params.train
    rewind = params.prune.rewind_iteration if (condition == "ticket" and rnd == 0) else None
    cfg = TrainConfig(
        t.iterations,
        t.batch_size,
        t.learning_rate,
        t.eval_every,
        rewind,
        patience=t.patience,
        test_every=t.test_every,
    )
    device = device_name()
    git_commit = tracking.git_revision()
    setting = {
        "device": device,
        "n_stacked": str(len(nets)),
        "strategy": params.prune.strategy,
        "scope": params.prune.scope,
        "rewind_iteration": str(params.prune.rewind_iteration),
    }
    if os.environ.get("DVC_EXP_NAME"):
        setting["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    flat_params = tracking.flatten(params.as_dict())
    for key in [key for key in flat_params if key.startswith("pipeline.")]:
        flat_params.pop(key)
    run_ids: dict[str, str] = {}
    for net in nets:
        tags = _run_tags(params, net, stage, git_commit, setting)
        run_ids[net.key] = recorder.start_child(f"{condition}-{name}-{net.key}", tags)
    log(
        f"{stage}: training {len(nets)} network(s) on {device} "
        f"({percent_remaining(nets[0].mask):.2f}% of weights remaining), "
        f"{t.iterations} iterations, MLflow {recorder.uri}"
    )
    ok = False
    try:
        started = time.perf_counter()
        engine = Engine(split, len(nets), cfg)
        live = recorder.live_curves([run_ids[n.key] for n in nets])  # curves while it trains
        results = engine.train(
            [n.init for n in nets],
            [n.mask for n in nets],
            [n.data_seed for n in nets],
            progress=log,
            label=f"[{stage}] ",
            on_evaluation=live,
        )
        live.flush()
        seconds = time.perf_counter() - started
        out = _write_outputs(
            params, condition, name, rnd, nets, results, run_ids, git_commit, stage
        )
        for net, res in zip(nets, results, strict=True):
            rid = run_ids[net.key]
            recorder.log_params(rid, flat_params)
            recorder.log_summary(
                rid,
                {
                    **res.summary,
                    "percent_remaining": percent_remaining(net.mask),
                    "train_seconds": seconds,
                },
            )
            recorder.log_dataset(
                rid, "mnist-split", str(manifest["split_sha256"]), str(paths.prepared_dir())
            )
            recorder.log_artifacts(rid, out["artifacts"][net.key])
            recorder.log_tags(
                rid,
                {**out["run_tags"].get(net.key, {}), lineage.tag("stop_reason"): res.stop_reason},
            )
        ok = True
    finally:
        for rid in run_ids.values():
            recorder.end(rid, ok)
    metrics = out["metrics"]
    io.write_json(paths.metrics_path(condition, name), metrics)  # last: the stage is done
    log(
        f"{stage}: early stop {metrics['summary']['early_stop_iteration']['mean']:.0f}, "
        f"test acc {metrics['summary']['test_accuracy_at_early_stop']['mean'] * 100:.2f}%, "
        f"stopped at {metrics['summary']['stop_iteration']['mean']:.0f} "
        f"({seconds:.0f}s)"
    )
    return metrics


def _write_outputs(
    params: Params,
    condition: str,
    name: str,
    rnd: int,
    nets: Sequence[Net],
    results: Sequence[Any],
    run_ids: dict[str, str],
    git_commit: str,
    stage: str,
) -> dict[str, Any]:
    runs: dict[str, dict[str, Any]] = {}
    curves: dict[str, Any] = {}
    artifacts: dict[str, list[tuple[Path, str]]] = {}
    run_tags: dict[str, dict[str, str]] = {}
    pruning = {
        "strategy": params.prune.strategy,
        "scope": params.prune.scope,
        "rates": params.prune.rates,
        "global_rate": params.prune.global_rate,
        "global_exclude": params.prune.global_exclude,
        "rewind_iteration": params.prune.rewind_iteration,
    }
    for net, res in zip(nets, results, strict=True):
        trained_file = paths.trained_path(condition, name, net.key)
        save_weights(trained_file, res.weights)
        files: list[tuple[Path, str]] = [(trained_file, "weights")]
        made_by = {
            "trial": net.trial,
            "theta0_sha256": str(net.source.theta0_sha256),
            "init_sha256": net.init_sha256,
            "trained_sha256": weights_hash(res.weights),
            "mlflow_run_id": run_ids[net.key],
            "dvc_stage": stage,
            "git_commit": git_commit,
            "study_hash": params.study_hash(),
        }
        if condition == "ticket":
            if rnd == 0:
                _write_dense(params, net, res, run_ids[net.key], git_commit)
                files += [
                    (paths.rewind_path(net.trial), "weights"),
                    (paths.rewind_path(net.trial).with_suffix(".json"), "weights"),
                ]
            nxt = _next_mask(params, rnd, res.weights, net.mask, net.trial)
            nxt_path = paths.next_mask_path(name, net.trial)
            save_mask(nxt_path, nxt)
            record = lineage.Lineage.of(
                nxt,
                round=rnd + 1,
                condition="ticket",
                parent_sha256=mask_hash(net.mask),
                parent_path=str(paths.round_mask_path(rnd, net.trial)),
                pruning=pruning,
                **made_by,
            )
            lineage.write(nxt_path, record)
            files += [(nxt_path, "mask"), (nxt_path.with_suffix(".json"), "mask")]
            run_tags[net.key] = lineage.RunTags(next_mask_sha256=record.sha256).as_tags()
        else:
            if condition == "reinit":
                init_file = paths.start_weights_path(condition, name, net.key)
                save_weights(init_file, net.init)
                files.append((init_file, "weights"))
            mpath = paths.control_mask_path(condition, name, net.key)
            save_mask(mpath, net.mask)
            lineage.write(
                mpath,
                lineage.Lineage.of(
                    net.mask,
                    round=rnd,
                    repeat=net.repeat,
                    condition=condition,
                    parent_sha256=net.source.source_mask_sha256,
                    parent_path=net.source.source_mask_path,
                    **made_by,
                ),
            )
            files += [(mpath, "mask"), (mpath.with_suffix(".json"), "mask")]
        runs[net.key] = {
            "trial": net.trial,
            "repeat": net.repeat or 0,
            "percent_remaining": percent_remaining(net.mask),
            **{key: res.summary[key] for key in res.summary},
        }
        runs[net.key]["early_stop_iteration"] = int(res.early_stop_iteration)
        runs[net.key]["stop_iteration"] = int(res.stop_iteration)
        runs[net.key]["stop_reason"] = res.stop_reason
        curves[net.key] = res.curves
        artifacts[net.key] = files
    curves_file = paths.curves_path(condition, name)
    io.write_json(curves_file, {"round": rnd, "condition": condition, "runs": curves})
    for key in artifacts:
        artifacts[key].append((curves_file, "curves"))
    dens = density(nets[0].mask)
    metrics = {
        "round": rnd,
        "condition": condition,
        "percent_remaining": float(np.mean([r["percent_remaining"] for r in runs.values()])),
        "iterations": params.train.iterations,
        "eval_every": params.train.eval_every,
        "patience": params.train.patience,
        "density": dens,
        "runs": runs,
        "summary": _aggregate(runs),
    }
    return {"metrics": metrics, "artifacts": artifacts, "run_tags": run_tags}


def _write_dense(params: Params, net: Net, res: Any, run_id: str, git_commit: str) -> None:
    """Round 0 also saves what later rounds start from: θ_j and the dense trained weights."""
    j = params.prune.rewind_iteration
    rewind = res.rewind if res.rewind is not None else net.init
    save_weights(paths.rewind_path(net.trial), rewind)
    io.write_json(
        paths.rewind_path(net.trial).with_suffix(".json"),
        {
            "sha256": weights_hash(rewind),
            "rewind_iteration": j,
            "trial": net.trial,
            "theta0_sha256": net.source.theta0_sha256,
            "mlflow_run_id": run_id,
            "git_commit": git_commit,
        },
    )
    save_weights(paths.dense_trained_path(net.trial), res.weights)


# ---------------------------------------------------------------- figures and report


def round_names(params: Params) -> list[str]:
    return [paths.round_name(0), *params.pipeline.rounds]


def load_metrics(params: Params) -> list[dict[str, Any]]:
    """The metrics files of the pipeline's stages, in today's schema (`lottery.results`)."""
    from lottery import results

    defaults = {
        "eval_every": params.train.eval_every,
        "iterations": params.train.iterations,
        "patience": int(getattr(params.train, "patience", 0) or 0),
    }
    names = [("ticket", n) for n in round_names(params)]
    names += [("reinit", n) for n in params.pipeline.reinit_rounds]
    names += [("random", n) for n in params.pipeline.random_rounds]
    return [
        results.normalise(io.read_json(paths.metrics_path(cond, n)), defaults) for cond, n in names
    ]


def load_curves(params: Params) -> dict[str, dict[int, dict[str, Any]]]:
    curves: dict[str, dict[int, dict[str, Any]]] = {}
    for m in load_metrics(params):
        curves.setdefault(m["condition"], {})[m["round"]] = io.read_json(
            paths.curves_path(m["condition"], paths.round_name(int(m["round"])))
        )
    return curves


def visualise(params: Params) -> dict[str, Path]:
    from lottery import plots

    rounds = range(params.study.rounds + 1)
    masks = {
        k: {t: load_mask(paths.round_mask_path(k, t)) for t in range(params.study.trials)}
        for k in rounds
    }
    figures = plots.render_all(
        masks, load_metrics(params), load_curves(params), paths.figures_dir()
    )
    log(f"wrote {len(figures)} figures to {paths.figures_dir()}")
    return figures


def _artifact_dir(top: str, rel: Path) -> str:
    return top if rel == Path(".") else f"{top}/{rel.as_posix()}"


def report(params: Params) -> Path:
    """The Markdown report, the DVC plots tables and the top-level summary metrics."""
    import pandas as pd

    from lottery import plots, results, tracking
    from lottery import report as rep

    metrics = load_metrics(params)
    runs = results.runs_frame(metrics)
    figures = rep.figure_order(paths.figures_dir())
    settings = {k: v for k, v in params.as_dict().items() if k != "pipeline"}
    text = rep.render_report(
        runs,
        figures,
        settings,
        params.study_hash(),
        tracking.git_revision(),
        paths.REPORTS.resolve(),
    )
    rep.write_outputs(
        runs,
        text,
        rep.compute_summary(runs),
        paths.report_path(),
        paths.plots_dir(),
        paths.summary_metrics_path(),
    )
    curves = load_curves(params)
    frames = [results.curves_frame(curves[m["condition"]][m["round"]], m) for m in metrics]
    plots.write_dvc_plot_tables(
        plots.dvc_curve_rows(pd.concat(frames, ignore_index=True), runs), paths.plots_dir()
    )
    # The study's parent run holds the headline numbers, the report and the figures.
    recorder = tracking.StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    summary = io.read_json(paths.summary_metrics_path())
    headline = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    recorder.log_summary(recorder.parent_id, headline)
    fig_root = paths.figures_dir().resolve()
    recorder.log_artifacts(
        recorder.parent_id,
        [
            (paths.report_path(), "report"),
            (paths.summary_metrics_path(), "report"),
            *(
                (p, _artifact_dir("figures", p.parent.relative_to(fig_root)))
                for p in figures.values()
            ),
        ],
    )
    log(f"wrote {paths.report_path()} ({len(metrics)} metrics files, {len(figures)} figures)")
    return paths.report_path()
