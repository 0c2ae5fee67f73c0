"""Typed, validated params: one frozen dataclass per section of params.yaml.

`load_params` checks everything (unknown and missing keys, types, ranges, and the
relations between keys) before any stage does work, and raises `ParamsError` with a
message naming the key, what is allowed, and what was found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lottery.core import arch
from lottery.core.arch import Architecture
from lottery.core.datasets import DATASETS
from lottery.core.io import read_yaml
from lottery.core.rounds import generate_pipeline
from lottery.core.validation import ParamsError, build, validate


@dataclass(frozen=True)
class StudyParams:
    name: str  # MLflow experiment name
    seed: int  # base seed; trial t draws θ0 and its data order from (seed, t)
    trials: int  # independent trials (the paper: 5)
    rounds: int  # pruning rounds after the dense round 0; change with `lottery rounds N`


@dataclass(frozen=True)
class DataParams:
    dataset: Literal["mnist", "fashion-mnist", "cifar10"]  # the keys of datasets.DATASETS
    validation_size: int  # examples held out of the training set (60k; CIFAR-10: 50k)
    stratified: bool  # per-class proportional validation split
    split_seed: int


@dataclass(frozen=True)
class ModelParams:
    network: Literal["mlp", "conv2", "conv4", "conv6"]  # arch.NETWORKS
    hidden: list[int]  # mlp: hidden widths ([300, 100] is LeNet-300-100); conv nets: []


@dataclass(frozen=True)
class TrainParams:
    iterations: int
    batch_size: int
    learning_rate: float
    eval_every: int  # evaluate on validation every N iterations (early stopping)
    test_every: int  # also evaluate the test set every N iterations (learning curves)
    patience: int  # settle a network's early stop N iterations after its minimum; 0 = never
    adam_epsilon: float  # Adam's ε (Keras: 1e-7; the paper's TF1 code: 1e-8)


@dataclass(frozen=True)
class PruneParams:
    point: Literal[
        "horizon", "early_stop"
    ]  # the weights pruned: at train.iterations, or the minimum
    strategy: Literal["iterative", "oneshot"]
    scope: Literal["layerwise", "global"]
    rates: dict[str, float]  # layer-wise fraction of surviving weights removed per round
    global_rate: float  # scope=global: fraction of the pooled survivors removed per round
    global_exclude: list[str]  # scope=global: layers pruned at their own `rates` instead
    rewind_iteration: int  # 0 = reset to θ0 (classic LTH); j > 0 = late rewinding


@dataclass(frozen=True)
class ControlParams:
    reinit: bool
    reinit_repeats: int
    random: bool
    rounds: Literal["all"] | list[int]  # rounds that get the controls: all, or e.g. [7, 11, 15]


@dataclass(frozen=True)
class ReportParams:
    #: "Matches dense" when ticket − dense's 95% interval stays above −margin (pp of test
    #: accuracy): about one trial-to-trial standard deviation of the dense network.
    match_margin_pp: float


@dataclass(frozen=True)
class RoundEntry:
    parent: str  # the round whose pruning produced this round's mask
    round: int


@dataclass(frozen=True)
class PipelineParams:
    """The round lists dvc.yaml's stages iterate: derived from study.rounds and controls
    (`Params.pipeline`), written into dvc.yaml by `lottery rounds` (lottery.core.rounds)."""

    rounds: dict[str, RoundEntry]  # stage key (r01, r02, ...) -> entry; DVC foreach over it
    reinit_rounds: dict[str, RoundEntry]
    random_rounds: dict[str, RoundEntry]


@dataclass(frozen=True)
class Params:
    study: StudyParams
    data: DataParams
    model: ModelParams
    train: TrainParams
    prune: PruneParams
    controls: ControlParams
    report: ReportParams

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def pipeline_dict(self) -> dict[str, dict[str, Any]]:
        """The round lists as plain dicts (`lottery.core.rounds.generate_pipeline`)."""
        c = self.controls
        return generate_pipeline(self.study.rounds, c.reinit, c.random, c.rounds)

    @property
    def pipeline(self) -> PipelineParams:
        """The stages dvc.yaml has for these params: ticket rounds and control rounds."""
        lists = {
            k: {n: RoundEntry(**e) for n, e in v.items()} for k, v in self.pipeline_dict().items()
        }
        return PipelineParams(**lists)

    def study_hash(self) -> str:
        """SHA-256 of every param that defines the study's results (not `study.name`).

        `model` and `data.dataset` came later: at their first values (LeNet-300-100 on
        MNIST) they are left out, so studies made before them keep their hash.
        """
        d = self.as_dict()
        d["study"] = {k: v for k, v in d["study"].items() if k != "name"}
        del d["report"]  # how results are read, not what they are
        d["pipeline"] = self.pipeline_dict()  # once a section of params.yaml: hashes stay
        if d["model"] == LEGACY_MODEL:
            del d["model"]
        if d["data"]["dataset"] == LEGACY_DATASET:
            del d["data"]["dataset"]
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def architecture(self) -> Architecture:
        """The network `model` names, on images of the shape `data.dataset` has."""
        shape = DATASETS[self.data.dataset].image_shape
        return arch.build(self.model.network, shape, self.model.hidden)

    def layer_rates(self) -> dict[str, float]:
        """`prune.rates` resolved to one rate per layer of the network, in forward order
        (a layer's own name first, else its type: conv, fc or out)."""
        return self.architecture().layer_rates(self.prune.rates)


#: The study every params file described before `model` and `data.dataset` existed.
LEGACY_MODEL: dict[str, Any] = {"network": "mlp", "hidden": [300, 100]}
LEGACY_DATASET = "mnist"


def network_and_dataset(raw: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The `model` section and `data.dataset` of a raw params mapping, as a params file
    that predates them means them (LeNet-300-100 on MNIST)."""
    model = {**LEGACY_MODEL, **dict(raw.get("model") or {})}
    return model, str(dict(raw.get("data") or {}).get("dataset", LEGACY_DATASET))


def parse_params(raw: Any) -> Params:
    if isinstance(raw, Mapping) and "pipeline" in raw:
        # Params files made before the round lists moved to dvc.yaml (lottery.core.rounds)
        # carry them here: they follow from study.rounds and controls, so they are dropped.
        raw = {k: v for k, v in raw.items() if k != "pipeline"}
    params: Params = build("", raw, Params)
    return validate(params)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; every problem raises `ParamsError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file (run from the project root).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read the params file ({exc}).") from None
    return params_from_text(text, path)


def params_from_text(text: str, path: str | Path = "params.yaml") -> Params:
    """Validate the text of a params file (`path` names it in messages)."""
    try:
        raw = read_yaml(text)
    except Exception as exc:  # ruamel's YAMLError and anything else its parser raises
        msg = " ".join(str(exc).split())
        raise ParamsError(f"{path}: not valid YAML: {msg}") from None
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc} Fix it in {path} and rerun.") from None


__all__ = [
    "Params",
    "ParamsError",
    "generate_pipeline",
    "load_params",
    "params_from_text",
    "parse_params",
    "read_yaml",
]
