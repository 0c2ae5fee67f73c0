"""Stages `prepare` and `init`: the dataset's split, then θ0 and the dense masks.

Neither imports TensorFlow or MLflow (their import closures are their DVC code deps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lottery.core import io, lineage, paths
from lottery.core.arch import glorot_normal_init
from lottery.core.masks import (
    ones_mask,
    save_mask,
    save_weights,
    weights_hash,
)
from lottery.core.params import Params
from lottery.data.prepare import prepare as prepare_data
from lottery.study.common import log, rng_for

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
