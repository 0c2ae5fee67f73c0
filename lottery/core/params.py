"""Typed, validated params: one frozen dataclass per section of params.yaml.

`load_params` checks everything (unknown and missing keys, types, ranges, and the
relations between keys) before any stage does work, and raises `ParamsError` with a
message naming the key, what is allowed, and what was found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from lottery.core import arch
from lottery.core.arch import Architecture
from lottery.core.datasets import DATASETS
from lottery.core.errors import UserError
from lottery.core.paths import round_name


class ParamsError(UserError, ValueError):
    """Invalid params: the message names the key, the allowed values and the fix."""


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
    """Generated from study.rounds and controls by `lottery rounds N`; not edited by hand."""

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
    pipeline: PipelineParams

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def study_hash(self) -> str:
        """SHA-256 of every param that defines the study's results (not `study.name`).

        `model` and `data.dataset` came later: at their first values (LeNet-300-100 on
        MNIST) they are left out, so studies made before them keep their hash.
        """
        d = self.as_dict()
        d["study"] = {k: v for k, v in d["study"].items() if k != "name"}
        del d["report"]  # how results are read, not what they are
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


def generate_pipeline(
    rounds: int, reinit: bool, random: bool, control_rounds: str | list[int] = "all"
) -> dict[str, dict[str, Any]]:
    """The `pipeline` section for `rounds` pruning rounds (DVC templates have no arithmetic).

    `control_rounds` ("all" or a list of round numbers) selects the rounds that get the
    reinit and random-prune controls.
    """
    every = range(1, rounds + 1)
    picked = every if isinstance(control_rounds, str) else sorted(set(control_rounds))

    def entries(ks: typing.Iterable[int]) -> dict[str, Any]:
        return {round_name(k): {"parent": round_name(k - 1), "round": k} for k in ks}

    return {
        "rounds": entries(range(1, rounds + 1)),
        "reinit_rounds": entries(picked) if reinit else {},
        "random_rounds": entries(picked) if random else {},
    }


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) is list:
        return f"a list of {_type_name(get_args(tp)[0]).removeprefix('an ').removeprefix('a ')}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, str(tp)
    )


def _check_type(key: str, value: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _check_type(key, value, option)
            except ParamsError:
                continue
        alternatives = " or ".join(_type_name(a) for a in get_args(tp))
        raise ParamsError(f"{key} must be {alternatives} (got {value!r}).")
    if origin is Literal:
        if value not in get_args(tp):
            raise ParamsError(f"{key} must be {_type_name(tp)} (got {value!r}).")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key} must be true or false (got {value!r}).")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key} must be an integer (got {value!r}).")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key} must be a number (got {value!r}).")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value.strip():
            raise ParamsError(f"{key} must be a non-empty string (got {value!r}).")
        return value
    if origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, list):
            raise ParamsError(f"{key} must be a list (got {value!r}).")
        return [_check_type(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict:
        _, inner = get_args(tp)
        if not isinstance(value, dict):
            raise ParamsError(f"{key} must be a mapping (got {value!r}).")
        return {str(k): _check_type(f"{key}.{k}", v, inner) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(key, value, tp)
    raise TypeError(f"unsupported params type {tp!r}")  # a bug in this module, not in params


def _build(prefix: str, raw: Any, cls: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{prefix} must be a mapping of keys (got {raw!r}).")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(map(str, raw)) - set(names))
    if unknown and not prefix:
        raise ParamsError(
            f"unknown key {unknown[0]}: params.yaml has no section {unknown[0]!r}; its "
            f"sections are {', '.join(names)}. Remove it, or move its keys into the section "
            "they belong to (nothing reads a section the study does not define)."
        )
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ParamsError(
            f"unknown key {where}{unknown[0]}: allowed keys here are {', '.join(names)}."
        )
    missing = [n for n in names if n not in raw]
    if missing:
        where = f"{prefix}." if prefix else ""
        raise ParamsError(
            f"missing key {where}{missing[0]}: every key of {cls.__name__} is required."
        )
    values = {n: _check_type(f"{prefix}.{n}" if prefix else n, raw[n], hints[n]) for n in names}
    return cls(**values)


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ParamsError(f"{key} must be {rule} (got {value!r}).")


def _validate_study_data(s: StudyParams, d: DataParams) -> None:
    _require(
        len(s.name) <= 500,
        "study.name",
        "at most 500 characters (it names the MLflow experiment; MLflow's limit)",
        f"{s.name[:40]}… ({len(s.name)} characters)",
    )
    _require(s.seed >= 0, "study.seed", "an integer >= 0", s.seed)
    _require(1 <= s.trials <= 100, "study.trials", "an integer from 1 to 100", s.trials)
    _require(0 <= s.rounds <= 99, "study.rounds", "an integer from 0 to 99", s.rounds)
    n_total = DATASETS[d.dataset].n_train
    _require(
        0 < d.validation_size < n_total,
        "data.validation_size",
        f"an integer from 1 to {n_total - 1} ({d.dataset} has {n_total:,} training examples)",
        d.validation_size,
    )
    _require(d.split_seed >= 0, "data.split_seed", "an integer >= 0", d.split_seed)


def _validate_model(m: ModelParams) -> None:
    if m.network == "mlp":
        _require(
            bool(m.hidden) and all(w >= 1 for w in m.hidden),
            "model.hidden",
            "a non-empty list of positive integers, the hidden widths of the mlp (LeNet-300-100: "
            "[300, 100])",
            m.hidden,
        )
        return
    _require(
        not m.hidden,
        "model.hidden",
        f"[] for {m.network}: hidden widths are for mlp only, {m.network}'s dense layers are "
        f"fixed at {'-'.join(map(str, arch.CONV_DENSE))} (Frankle & Carbin §3)",
        m.hidden,
    )


def _validate_train(t: TrainParams, n_train: int) -> None:
    _require(t.iterations >= 1, "train.iterations", "an integer >= 1", t.iterations)
    _require(
        1 <= t.batch_size <= n_train,
        "train.batch_size",
        f"an integer from 1 to the training-set size {n_train}",
        t.batch_size,
    )
    _require(0 < t.learning_rate < 1, "train.learning_rate", "a number in (0, 1)", t.learning_rate)
    _require(
        1 <= t.eval_every <= t.iterations,
        "train.eval_every",
        f"an integer from 1 to train.iterations ({t.iterations})",
        t.eval_every,
    )
    _require(
        t.test_every >= t.eval_every and t.test_every % t.eval_every == 0,
        "train.test_every",
        f"a multiple of train.eval_every ({t.eval_every})",
        t.test_every,
    )
    _require(
        t.patience == 0 or (t.patience > 0 and t.patience % t.eval_every == 0),
        "train.patience",
        f"0 (train every network to train.iterations) or a multiple of train.eval_every "
        f"({t.eval_every})",
        t.patience,
    )
    _require(
        0 < t.adam_epsilon <= 0.01,
        "train.adam_epsilon",
        "a number in (0, 0.01] (Keras: 1.0e-7; the paper's TF1 code: 1.0e-8)",
        t.adam_epsilon,
    )


def _validate_rates(pr: PruneParams, net: Architecture) -> None:
    for key, rate in pr.rates.items():
        if key not in net.names and key not in net.types:
            raise ParamsError(
                f"prune.rates.{key}: {net.describe()} has no layer or layer type {key!r}; give "
                f"rates for {net.rate_keys()} (a type sets every layer of that type, a layer's "
                "name overrides its type)."
            )
        _require(0 <= rate < 1, f"prune.rates.{key}", "a number in [0, 1)", rate)
    try:
        net.layer_rates(pr.rates)
    except ValueError as exc:
        raise ParamsError(f"prune.rates: {exc}.") from None
    _require(0 <= pr.global_rate < 1, "prune.global_rate", "a number in [0, 1)", pr.global_rate)
    for i, layer in enumerate(pr.global_exclude):
        _require(
            layer in net.names,
            f"prune.global_exclude[{i}]",
            f"a layer of {net.describe()}: one of {', '.join(net.names)}",
            layer,
        )


def _validate_prune(pr: PruneParams, t: TrainParams, net: Architecture) -> None:
    _require(  # only early_stop lets patience end the dense network's training
        pr.point == "horizon"
        or t.patience == 0
        or pr.rewind_iteration <= t.eval_every + t.patience,
        "prune.rewind_iteration",
        f"at most train.eval_every + train.patience ({t.eval_every + t.patience}) with "
        "prune.point early_stop, the earliest a network can stop; use a larger patience",
        pr.rewind_iteration,
    )
    _validate_rates(pr, net)
    _require(
        0 <= pr.rewind_iteration < t.iterations,
        "prune.rewind_iteration",
        f"an integer from 0 to train.iterations - 1 ({t.iterations - 1})",
        pr.rewind_iteration,
    )


def _validate_controls(c: ControlParams, rounds: int) -> None:
    _require(
        1 <= c.reinit_repeats <= 20,
        "controls.reinit_repeats",
        "an integer from 1 to 20",
        c.reinit_repeats,
    )
    if c.rounds != "all":
        bad = [k for k in c.rounds if not 1 <= k <= rounds]
        _require(
            bool(c.rounds) and not bad,
            "controls.rounds",
            f"all, or a non-empty list of rounds from 1 to study.rounds ({rounds})",
            c.rounds,
        )


def _validate_report(r: ReportParams) -> None:
    _require(
        0 <= r.match_margin_pp <= 100,
        "report.match_margin_pp",
        "a number of percentage points from 0 to 100 (default 0.25)",
        r.match_margin_pp,
    )


def _validate_pipeline(p: Params) -> None:
    s, c = p.study, p.controls
    expected = generate_pipeline(s.rounds, c.reinit, c.random, c.rounds)
    got = {
        k: {name: dataclasses.asdict(e) for name, e in getattr(p.pipeline, k).items()}
        for k in expected
    }
    if got != expected:
        raise ParamsError(
            "the pipeline section of params.yaml does not match study.rounds="
            f"{s.rounds}, controls.reinit={c.reinit}, controls.random={c.random}, "
            f"controls.rounds={c.rounds}. It is "
            "generated: run `lottery rounds` (or `lottery rounds N` to change the number "
            "of rounds) to rewrite it, then `dvc repro`."
        )


def validate(p: Params) -> Params:
    """Check the ranges of every key and the relations between keys (ParamsError)."""
    _validate_study_data(p.study, p.data)
    _validate_model(p.model)
    _validate_train(p.train, DATASETS[p.data.dataset].n_train - p.data.validation_size)
    _validate_prune(p.prune, p.train, p.architecture())
    _validate_controls(p.controls, p.study.rounds)
    _validate_report(p.report)
    _validate_pipeline(p)
    return p


def parse_params(raw: Any) -> Params:
    params: Params = _build("", raw, Params)
    return validate(params)


def read_yaml(text: str) -> Any:
    """Parse YAML exactly as DVC does (ruamel.yaml, safe, YAML 1.2: `1e-3` is a number).

    The one reader of params.yaml in this project, so that the stages, `lottery rounds`
    and DVC (`dvc params diff`, `dvc exp run -S`) never disagree on what a value is.
    Raises ruamel's `YAMLError` on malformed text.
    """
    import warnings

    from ruamel.yaml import YAML

    with warnings.catch_warnings():  # e.g. a `%YAML 1.1` header's float-syntax notes
        warnings.simplefilter("ignore")
        return YAML(typ="safe").load(text)


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
