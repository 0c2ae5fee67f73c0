"""The rules of params.yaml: types of every key, the ranges of values and the relations
between keys. `build` turns a raw mapping into the frozen dataclasses of `lottery.core.params`
(unknown and missing keys, types), `validate` checks the rest; both raise `ParamsError`
naming the key, what is allowed, and what was found.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from lottery.core import arch
from lottery.core.arch import Architecture
from lottery.core.datasets import DATASETS
from lottery.core.errors import UserError

if TYPE_CHECKING:
    from lottery.core.params import (
        ControlParams,
        DataParams,
        ModelParams,
        Params,
        PruneParams,
        ReportParams,
        StudyParams,
        TrainParams,
    )


class ParamsError(UserError, ValueError):
    """Invalid params: the message names the key, the allowed values and the fix."""


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
        return build(key, value, tp)
    raise TypeError(f"unsupported params type {tp!r}")  # a bug in this module, not in params


def build(prefix: str, raw: Any, cls: Any) -> Any:
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


def validate(p: Params) -> Params:
    """Check the ranges of every key and the relations between keys (ParamsError)."""
    _validate_study_data(p.study, p.data)
    _validate_model(p.model)
    _validate_train(p.train, DATASETS[p.data.dataset].n_train - p.data.validation_size)
    _validate_prune(p.prune, p.train, p.architecture())
    _validate_controls(p.controls, p.study.rounds)
    _validate_report(p.report)
    return p
