"""What the paper estimate knows of a study before it runs: where each network's early stop
settles (`StopProfile`), and what a kept study of the same protocol measured (`Wallclock`).

A network's early stop *settles* `train.patience` iterations after its minimum validation
loss (or at the horizon, whichever comes first); after that it is no longer evaluated, and
a network that does not train on to the horizon stops training there (`lottery.engine.run`).
The settle points come from the committed patience evidence (`reports/patience`: its
full-horizon curves replayed at the preset's patience, controls at three rounds only), or,
for every round, from a kept study of the preset's protocol under `reports/results/`. The
evidence also gives each network's new minima, where the engine evaluates the test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lottery.core import io
from lottery.core.errors import UserError

#: A kept study's measured wall-clock, next to its params.yaml (see `Wallclock`).
WALLCLOCK_FILE = "wallclock.json"


@dataclass(frozen=True)
class StopProfile:
    """Where early stops settle at one patience: per condition and round, the fraction of
    the horizon at which each network's early stop settled; per evidence network, the
    iterations where its validation loss reached a new minimum before it settled (where the
    engine evaluates the test set)."""

    source: str
    patience: int
    settled: dict[str, dict[int, list[float]]]
    minima: list[list[int]]  # per evidence run, in the evidence's order

    def settled_at(self, condition: str, rnd: int) -> list[float]:
        """The settle fractions of a condition at the nearest round measured (a condition
        never measured takes the tickets')."""
        rounds = self.settled.get(condition) or self.settled["ticket"]
        nearest = min(rounds, key=lambda r: (abs(r - rnd), r))
        return rounds[nearest]


def load_profile(patience: int, path: Path) -> StopProfile | None:
    """The profile of the committed patience evidence, or None without it."""
    if not path.is_file():
        return None
    from lottery.analysis.patience import from_file, new_minima, outcome

    settled: dict[str, dict[int, list[float]]] = {}
    minima: list[list[int]] = []
    for c in from_file(path):
        o = outcome(c, patience)  # replayed on the full curve: it stops where it settles
        settled.setdefault(c.condition, {}).setdefault(c.round, []).append(
            o.stop_iteration / c.horizon
        )
        minima.append(new_minima(c, until=o.stop_iteration))
    return StopProfile(str(path), patience, settled, minima)


def _raw(path: Path) -> Any:
    from lottery.core.io import read_yaml

    return read_yaml(path.read_text())


def _protocol(raw: Any) -> tuple[Any, ...]:
    """A params mapping's training protocol: its `train` section, pruning point, network
    and dataset (a params file without `model`/`data.dataset` predates them and ran
    LeNet-300-100 on MNIST; one without `prune.point` pruned where patience stopped, which
    is neither point)."""
    from lottery.core.params import network_and_dataset

    point = dict(raw.get("prune") or {}).get("point", "stop")
    return dict(raw["train"]), point, *network_and_dataset(raw)


def _plan(raw: Any) -> tuple[Any, ...]:
    """What a params mapping trains: trials, rounds and the controls section."""
    study = dict(raw.get("study") or {})
    return study.get("trials"), study.get("rounds"), dict(raw.get("controls") or {})


def same_protocol(result_params: Path, preset: Path) -> bool:
    """A kept result ran the preset's training protocol (`_protocol`)."""
    return bool(_protocol(_raw(result_params)) == _protocol(_raw(preset)))


def settled_fraction(run: dict[str, Any], iterations: int, patience: int) -> float:
    """Where a recorded run's early stop settled, as a fraction of the horizon: `patience`
    iterations after its early stop, or the horizon (a ticket of `prune.point: horizon`
    records its stop at the horizon, where it was last evaluated, not where it settled)."""
    if not patience:
        return 1.0
    return min(run["early_stop_iteration"] + patience, iterations) / iterations


def study_settled(results: Path, preset: Path) -> tuple[str, dict[str, dict[int, list[float]]]]:
    """Per condition and round, the settle fractions of every network of the first kept
    study of the preset's protocol (from its metrics files); ("", {}) when no kept study
    ran that protocol."""
    for params in sorted(results.glob("*/params.yaml")):
        if not same_protocol(params, preset):
            continue
        patience = int(_raw(params)["train"].get("patience") or 0)
        settled: dict[str, dict[int, list[float]]] = {}
        for f in sorted(params.parent.glob("metrics/*/r*.json")):
            m = io.read_json(f)
            runs = [settled_fraction(r, m["iterations"], patience) for r in m["runs"].values()]
            settled.setdefault(m["condition"], {})[int(m["round"])] = runs
        if settled:
            return str(params.parent), settled
    return "", {}


def with_study_settled(
    profile: StopProfile | None, results: Path, preset: Path
) -> StopProfile | None:
    """The evidence's profile with its settle points replaced by those a kept study of the
    preset's protocol measured at every round (the evidence has controls at three rounds
    only); the evidence still gives the new minima where the test set is evaluated."""
    source, settled = study_settled(results, preset)
    if profile is None or not settled:
        return profile
    return StopProfile(
        f"{source} (stops), {profile.source} (new minima)",
        profile.patience,
        settled,
        profile.minima,
    )


class WallclockError(UserError):
    """A kept study's wallclock.json that cannot be read as one."""


@dataclass(frozen=True)
class Wallclock:
    """The measured wall-clock of a kept study: `reports/results/<name>/wallclock.json`,
    written by whoever ran the study and kept it, read by the paper estimate to print
    itself against it. Its fields (all required):

    - `seconds` (number > 0): wall-clock of the whole run, from the start of its first
      stage to the end of its last (`dvc repro` of every stage, bookkeeping included);
    - `machine` (string): what ran it, in words (e.g. "2-core x86-64 CPU, no GPU");
    - `commit` (string): the git commit of the code that ran it;
    - `started`, `finished` (strings): ISO 8601 date-times of that start and end.
    """

    seconds: float
    machine: str
    commit: str
    started: str
    finished: str

    @classmethod
    def load(cls, path: Path) -> Wallclock:
        """Read and check one wallclock.json; a bad one raises `WallclockError`."""
        fix = f"fix or remove {path} (fields: seconds, machine, commit, started, finished)"
        try:
            raw = io.read_json(path)
        except (OSError, ValueError) as exc:
            raise WallclockError(f"{path}: not readable as JSON ({exc}); {fix}") from None
        if not isinstance(raw, dict):
            raise WallclockError(f"{path}: not a JSON object; {fix}")
        fields = set(cls.__dataclass_fields__)
        if set(raw) != fields:
            odd = sorted(fields - set(raw)) + sorted(set(raw) - fields)
            raise WallclockError(f"{path}: missing or unknown field(s) {', '.join(odd)}; {fix}")
        seconds = raw["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise WallclockError(f"{path}: seconds must be a number; {fix}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise WallclockError(f"{path}: seconds must be positive; {fix}")
        texts = {k: raw[k] for k in ("machine", "commit", "started", "finished")}
        if not all(isinstance(v, str) and v for v in texts.values()):
            raise WallclockError(f"{path}: machine, commit, started, finished are text; {fix}")
        try:
            datetime.fromisoformat(texts["started"])
            datetime.fromisoformat(texts["finished"])
        except ValueError:
            raise WallclockError(f"{path}: started and finished are ISO 8601; {fix}") from None
        return cls(float(seconds), **texts)


def measured_wallclock(results: Path, preset: Path) -> tuple[str, Wallclock] | None:
    """The first kept study that ran the preset's protocol and plan (trials, rounds,
    controls) and records its wall-clock, with its directory; None without one."""
    for params in sorted(results.glob("*/params.yaml")):
        record = params.parent / WALLCLOCK_FILE
        if not record.is_file() or not same_protocol(params, preset):
            continue
        if _plan(_raw(params)) == _plan(_raw(preset)):
            return str(params.parent), Wallclock.load(record)
    return None
