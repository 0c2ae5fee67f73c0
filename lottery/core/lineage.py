"""The lineage of a mask and the MLflow tags of the run that made it: one schema each.

Every mask file has a JSON sidecar (same name, `.json`) holding its `Lineage`: what the
mask is (hash, density), where it comes from (round, trial, condition, repeat, parent mask,
θ0), the weights its network started from (`init_sha256`: θ0, θ_j when rewinding, or a
control's fresh init) and ended with, and the run, stage, commit and study that produced it.
`lottery audit` walks these records back to θ0.

Every training run carries `RunTags`, the same names under the `lottery.` prefix, so the
files and MLflow can be checked against each other field by field.

One name per concept: `study_hash` (the hash of the params), `git_commit`, `init_sha256`,
`rewind_iteration` (j of θ_j). Sidecars written by earlier code under other names
(`params_hash`, `git_rev`, `start_sha256`) are read under today's names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from lottery.core import io
from lottery.core.arch import Architecture
from lottery.core.masks import MaskError, density, kept_counts, mask_hash, percent_remaining

TAG = "lottery."  # prefix of every MLflow tag this project sets

#: Names earlier code wrote -> today's name.
LEGACY_NAMES = {"params_hash": "study_hash", "git_rev": "git_commit", "start_sha256": "init_sha256"}


def tag(name: str) -> str:
    """The MLflow tag of a lineage or run field: `lottery.<name>`."""
    return f"{TAG}{name}"


@dataclass(frozen=True)
class Lineage:
    """The lineage record of one mask (its JSON sidecar)."""

    sha256: str  # mask_hash of the mask
    density: dict[str, float]  # per layer and overall
    percent_remaining: float
    kept: dict[str, int]  # surviving weights per layer
    round: int  # m_k's k
    trial: int
    condition: str  # ticket | reinit | random
    dvc_stage: str
    theta0_sha256: str
    parent_sha256: str | None = None  # the mask it derives from (None for m_0)
    parent_path: str | None = None
    repeat: int | None = None  # a reinit draw
    init_sha256: str | None = None  # the weights its network started from
    trained_sha256: str | None = None  # the weights its network ended with
    pruning: dict[str, Any] | None = None  # how a ticket round pruned to this mask
    #: The weights a ticket round's mask was cut from: {"point": "horizon" | "early_stop",
    #: "iteration": the iteration of those weights} (`prune.point`).
    pruned_from: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    git_commit: str | None = None
    study_hash: str | None = None

    @classmethod
    def of(cls, mask: Mapping[str, np.ndarray], *, arch: Architecture, **given: Any) -> Lineage:
        """The record of `mask` (of network `arch`): hash, density and counts computed, the
        rest `given`."""
        return cls(
            sha256=mask_hash(mask, arch=arch),
            density=density(mask, arch=arch),
            percent_remaining=percent_remaining(mask, arch=arch),
            kept=kept_counts(mask, arch=arch),
            **given,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def normalise(record: Mapping[str, Any]) -> dict[str, Any]:
    """A sidecar's fields under today's names (earlier code's names mapped)."""
    return {LEGACY_NAMES.get(k, k): v for k, v in record.items()}


def lineage_path(mask_path: Path) -> Path:
    """The lineage sidecar of a mask file: same name, `.json` suffix."""
    return Path(mask_path).with_suffix(".json")


def write(mask_path: Path, record: Lineage) -> None:
    """Write the lineage record next to the mask file (atomically, sorted keys)."""
    io.write_json(lineage_path(mask_path), record.to_json())


def read_record(mask_path: Path) -> dict[str, Any]:
    """The lineage sidecar of a mask file as a dict under today's names, whatever it holds
    (the audit reports each wrong field); `MaskError` when it is missing or not an object."""
    path = lineage_path(mask_path)
    fix = "regenerate it with the stage that wrote the mask (`dvc repro`)"
    try:
        record = io.read_json(path)
    except FileNotFoundError:
        raise MaskError(f"{path}: lineage file not found; {fix}.") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MaskError(f"{path}: unreadable lineage JSON ({exc}); {fix}.") from None
    if not isinstance(record, dict):
        raise MaskError(f"{path}: lineage must be a JSON object, got {type(record).__name__}")
    return normalise(record)


def read(mask_path: Path) -> Lineage:
    """The lineage record of a mask file; `MaskError` naming the fields it lacks."""
    record = read_record(mask_path)
    names = {f.name for f in fields(Lineage)}
    required = [f.name for f in fields(Lineage) if f.default is MISSING]
    missing = [n for n in required if n not in record]
    if missing:
        raise MaskError(
            f"{lineage_path(mask_path)}: lineage lacks {missing}; regenerate it with the "
            "stage that wrote the mask (`dvc repro`)."
        )
    return Lineage(**{k: v for k, v in record.items() if k in names})


@dataclass(frozen=True)
class RunTags:
    """The `lottery.*` tags that tie a training run to its files (`as_tags`)."""

    round: int | None = None  # the round the run trains (m_k, k)
    trial: int | None = None
    condition: str | None = None
    repeat: int | None = None
    dvc_stage: str | None = None
    theta0_sha256: str | None = None
    mask_sha256: str | None = None  # the mask it trains
    source_mask_sha256: str | None = None  # a control's m_k (its own mask may differ)
    source_mask_path: str | None = None
    next_mask_sha256: str | None = None  # a ticket round's pruned mask m_{k+1}
    pruned_from_point: str | None = None  # prune.point of the weights m_{k+1} was cut from
    pruned_from_iteration: int | None = None  # the iteration of those weights
    init_sha256: str | None = None
    study_hash: str | None = None
    git_commit: str | None = None

    def as_tags(self) -> dict[str, str]:
        """`{lottery.<field>: str(value)}` for every field set."""
        return {tag(k): str(v) for k, v in asdict(self).items() if v is not None}
