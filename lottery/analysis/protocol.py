"""What differs between two studies' params, and whether their rows can be compared.

`params_diff` lists every param whose value differs, as `dvc params diff` does (key, BASE
value, NEW value; a key one file lacks has no value, `ABSENT`), over each study's
params.yaml read as DVC reads it (YAML 1.2: `lottery.core.io.read_yaml`). The generated
`pipeline` section of older params files is left out: it follows from study.rounds and
controls (the round lists now live in dvc.yaml, `lottery.core.rounds`).
`protocol_warnings` sorts the differences:

- a different network or dataset (`model`, `data.dataset`; a file without them means
  LeNet-300-100 on MNIST, `params.network_and_dataset`) makes a % of weights remaining of
  one study a different quantity in the other, so no row pairs: `ProtocolError`;
- a difference in any param that changes what a round's networks are (training, pruning,
  seeds, the data split, the controls' draws; a param only one file has included) is a
  warning: a change between the studies is the joint effect of all of them;
- the rest (`NEUTRAL`) changes no row's result: the experiment's name, how many rounds and
  trials and which rounds get controls, the test curve's grid, the report's match margin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lottery.core.errors import UserError
from lottery.core.io import read_yaml
from lottery.core.params import network_and_dataset

#: Left out of the diff: generated from study.rounds and controls.
GENERATED = ("pipeline",)
#: Params (or sections, ending in ".") whose difference changes no paired row's result.
NEUTRAL = (
    "study.name",
    "study.rounds",
    "study.trials",
    "train.test_every",
    "controls.reinit",
    "controls.random",
    "controls.rounds",
    "report.",
)


class ProtocolError(UserError):
    """Two studies that cannot be compared, or a study root that cannot be read."""


class _Absent:
    """A key one params file lacks (`dvc params diff` prints "-")."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class ParamChange:
    """One param that differs: its dotted key, BASE's value and NEW's (or `ABSENT`)."""

    key: str
    base: Any
    new: Any

    @property
    def neutral(self) -> bool:
        return any(self.key == n or (n.endswith(".") and self.key.startswith(n)) for n in NEUTRAL)


def read_params(root: str | Path) -> dict[str, Any]:
    """The params.yaml of the study at `root`, as DVC reads it (ProtocolError without one)."""
    path = Path(root) / "params.yaml"
    if not path.is_file():
        raise ProtocolError(
            f"{path}: no such file; a study root holds the params.yaml it ran with (a kept "
            "study under reports/results/ has one), and the comparison reads it."
        )
    try:
        raw = read_yaml(path.read_text())
    except Exception as exc:  # ruamel's YAMLError and anything else its parser raises
        raise ProtocolError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{path}: not a mapping of params sections (got {raw!r}).")
    return dict(raw)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf (lists are values), as `dvc params diff` keys them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def params_diff(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[ParamChange]:
    """Every param whose value differs, sorted by key (`pipeline` left out)."""
    a, b = (flatten({k: v for k, v in p.items() if k not in GENERATED}) for p in (base, new))
    return [
        ParamChange(k, a.get(k, ABSENT), b.get(k, ABSENT))
        for k in sorted(set(a) | set(b))
        if a.get(k, ABSENT) != b.get(k, ABSENT)
    ]


def value_text(value: Any) -> str:
    """A param's value as params.yaml spells it; "–" for `ABSENT`."""
    if value is ABSENT:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def change_text(c: ParamChange) -> str:
    return f"{c.key} ({value_text(c.base)} → {value_text(c.new)})"


def protocol_warnings(
    base_name: str,
    base: Mapping[str, Any],
    new_name: str,
    new: Mapping[str, Any],
) -> list[ParamChange]:
    """The result-affecting params that differ (see the module doc); raises ProtocolError
    when the two studies train different networks or datasets."""
    (model_a, data_a), (model_b, data_b) = network_and_dataset(base), network_and_dataset(new)
    if (model_a, data_a) != (model_b, data_b):
        what = [
            change_text(c)
            for c in params_diff({"model": model_a}, {"model": model_b})
            + params_diff({"data": {"dataset": data_a}}, {"data": {"dataset": data_b}})
        ]
        raise ProtocolError(
            f"{base_name} and {new_name} train different networks or datasets "
            f"({'; '.join(what)}): a % of weights remaining of one is not one of the other, "
            "so no row pairs. Compare two studies of one network on one dataset."
        )
    return [
        c
        for c in params_diff(base, new)
        if not c.neutral and not c.key.startswith(("model.", "data.dataset"))
    ]
