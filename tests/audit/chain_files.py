"""A small real chain for the audit's unit tests: θ0, m_0 and the pruned m_1 of trial 0 of
a tiny MLP (4 inputs, 3 hidden, 10 outputs), written with lottery.core's own mask, weights
and lineage writers; optionally the MLflow run that made m_1 (tags and artifacts as a
training stage logs them) and a dvc.lock recording every file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from lottery.core import paths
from lottery.core.arch import build
from lottery.core.lineage import Lineage, RunTags, lineage_path
from lottery.core.lineage import write as write_lineage
from lottery.core.masks import mask_hash, ones_mask, save_mask, save_weights, weights_hash

ARCH = build("mlp", (2, 2, 1), (3,))
THETA0 = paths.theta0_path(0).as_posix()
M0 = paths.initial_mask_path(0).as_posix()
M1 = paths.next_mask_path(paths.round_name(0), 0).as_posix()
TRAINED = (Path(M1).parent / "trained.npz").as_posix()


def write_weights(root: Path, rel: str, seed: int) -> str:
    """Random float32 weights of ARCH at root/rel; their canonical hash."""
    rng = np.random.default_rng(seed)
    weights = {
        key: rng.standard_normal(shape).astype(np.float32)
        for key, shape in ARCH.weight_shapes().items()
    }
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    save_weights(root / rel, weights, arch=ARCH)
    return weights_hash(weights, arch=ARCH)


def pruned_mask() -> dict[str, np.ndarray]:
    """m_1: m_0 with the first weight of every layer pruned."""
    mask = ones_mask(ARCH)
    for arr in mask.values():
        arr.flat[0] = False
    return mask


def write_mask(root: Path, rel: str, mask: dict[str, np.ndarray], **given: Any) -> str:
    """The mask at root/rel with its lineage sidecar (`given`: the fields besides the hash
    and densities); its hash."""
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    save_mask(root / rel, mask, arch=ARCH)
    write_lineage(root / rel, Lineage.of(mask, arch=ARCH, **given))
    return mask_hash(mask, arch=ARCH)


def make_chain(root: Path, client: Any = None) -> dict[str, str]:
    """θ0, m_0 and m_1 (with the weights m_1's run started from and ended with) under
    root/artifacts; with an MLflow `client`, the FINISHED run that made m_1. Returns the
    hashes by name (theta0, m0, m1, trained) and, with a client, m1's run id."""
    theta = write_weights(root, THETA0, seed=0)
    (root / THETA0).with_suffix(".json").write_text(json.dumps({"sha256": theta}))
    m0 = write_mask(
        root,
        M0,
        ones_mask(ARCH),
        round=0,
        trial=0,
        condition="ticket",
        dvc_stage="init",
        theta0_sha256=theta,
    )
    trained = write_weights(root, TRAINED, seed=1)
    out = {"theta0": theta, "m0": m0, "trained": trained}
    run_id = None if client is None else client.create_run(experiment(client)).info.run_id
    out["m1"] = write_mask(
        root,
        M1,
        pruned_mask(),
        round=1,
        trial=0,
        condition="ticket",
        dvc_stage="dense",
        theta0_sha256=theta,
        parent_sha256=m0,
        parent_path=M0,
        init_sha256=theta,
        trained_sha256=trained,
        mlflow_run_id=run_id,
    )
    if client is not None and run_id is not None:
        tags = RunTags(
            round=0,
            trial=0,
            condition="ticket",
            dvc_stage="dense",
            theta0_sha256=theta,
            mask_sha256=m0,
            next_mask_sha256=out["m1"],
            init_sha256=theta,
        )
        for name, value in tags.as_tags().items():
            client.set_tag(run_id, name, value)
        client.log_artifact(run_id, str(root / M1), "mask")
        client.log_artifact(run_id, str(lineage_path(root / M1)), "mask")
        client.set_terminated(run_id, status="FINISHED")
        out["run_id"] = run_id
    return out


def experiment(client: Any) -> str:
    """The id of the test's experiment (made on first use, its artifacts in the store's
    folder)."""
    found = client.get_experiment_by_name("audit")
    if found is not None:
        return str(found.experiment_id)
    store = Path(client.tracking_uri.removeprefix("sqlite:///")).parent
    return str(client.create_experiment("audit", artifact_location=(store / "mlruns").as_uri()))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def lock_text(root: Path, outs: dict[str, list[str]], params: dict[str, Any] | None = None) -> str:
    """dvc.lock as DVC writes it, recording each stage's file outputs `outs` (paths under
    `root`) with their md5 and size, and `params` (stage -> {key: value}) from params.yaml."""
    lines = ["schema: '2.0'", "stages:"]
    for stage, rels in outs.items():
        lines += [f"  {stage}:", f"    cmd: python stages/{stage}.py"]
        if params and stage in params:
            lines += ["    params:", "      params.yaml:"]
            lines += [f"        {k}: {v}" for k, v in params[stage].items()]
        lines.append("    outs:")
        for rel in rels:
            lines += [
                f"    - path: {rel}",
                "      hash: md5",
                f"      md5: {md5(root / rel)}",
                f"      size: {(root / rel).stat().st_size}",
            ]
    return "\n".join(lines) + "\n"


def chain_lock(root: Path) -> str:
    """dvc.lock recording every file of `make_chain`: init's θ0 and m_0, dense's m_1."""
    init = [THETA0, str(Path(THETA0).with_suffix(".json")), M0, str(Path(M0).with_suffix(".json"))]
    dense = [M1, str(Path(M1).with_suffix(".json")), TRAINED]
    return lock_text(
        root, {"init": init, "dense": dense}, {"dense": {"train.learning_rate": 0.0012}}
    )
