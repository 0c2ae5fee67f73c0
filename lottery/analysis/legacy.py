"""Metrics and curves files written by older versions, read in today's schema.

Every reader of a study's files goes through here, so the old schemas are known in one place:

- **Metrics files** from before `stop_iteration` existed have `final_test_accuracy` and
  `final_val_loss` (today's `test_accuracy_at_stop`, `val_loss_at_stop`) and no
  `eval_every`, `iterations` or `patience`. Their runs trained to the horizon
  (`stop_iteration` = `iterations`, `stop_reason` = "horizon"), and the settings come from
  the study's `params.yaml` (`training_settings`, read as DVC reads it: YAML 1.2).
- **Curves files** from before `test_iteration` existed evaluated the test set on the
  validation grid, `iteration` (`tested_iterations`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lottery.core.io import read_yaml

#: The training settings a metrics file records (the same for every run of a file).
STUDY_COLUMNS: tuple[str, ...] = ("eval_every", "iterations", "patience")
#: Old run keys -> today's.
LEGACY_RUN_KEYS: dict[str, str] = {
    "final_test_accuracy": "test_accuracy_at_stop",
    "final_val_loss": "val_loss_at_stop",
}


def training_settings(params_file: str | Path) -> dict[str, int]:
    """eval_every, iterations and patience from a params.yaml ({} when there is none)."""
    path = Path(params_file)
    if not path.is_file():
        return {}
    return train_settings(read_yaml(path.read_text()) or {})


def train_settings(params: Mapping[str, Any]) -> dict[str, int]:
    """eval_every, iterations and patience of a raw params mapping (patience 0 where a
    file predates it; the others only where present)."""
    train = params.get("train") or {}
    out = {k: int(train[k]) for k in ("eval_every", "iterations") if k in train}
    out["patience"] = int(train.get("patience", 0) or 0)
    return out


def normalise(metrics: Mapping[str, Any], defaults: Mapping[str, int] | None = None) -> dict:
    """A copy of one metrics file in today's schema (see the module doc for old files).

    `defaults` supplies eval_every / iterations / patience when the file lacks them.
    Raises KeyError naming the file's condition and round when neither has them.
    """
    m = copy.deepcopy(dict(metrics))
    defaults = dict(defaults or {})
    defaults.setdefault("patience", 0)
    for key in STUDY_COLUMNS:
        if m.get(key) is None:
            if key not in defaults:
                raise KeyError(
                    f"metrics of {m.get('condition')!r} round {m.get('round')!r} have no "
                    f"{key!r}, and no params.yaml gave one"
                )
            m[key] = defaults[key]
    for run in (m.get("runs") or {}).values():
        for old, new in LEGACY_RUN_KEYS.items():
            if old in run:
                run.setdefault(new, run.pop(old))
        run.setdefault("stop_iteration", int(m["iterations"]))
        run.setdefault("stop_reason", "horizon")
        run.setdefault("percent_remaining", m.get("percent_remaining"))
    summary = m.get("summary") or {}
    for old, new in LEGACY_RUN_KEYS.items():
        if old in summary:
            summary.setdefault(new, summary.pop(old))
    return m


def tested_iterations(run: Mapping[str, Any]) -> list[Any]:
    """The iterations at which one run of a curves file evaluated the test set: its own
    `test_iteration` grid, or, in an old file, the validation grid `iteration`."""
    return list(run.get("test_iteration", run.get("iteration", [])))
