"""What every stage shares: the seed streams, the stage log and DVC's stage names."""

from __future__ import annotations

import os
import sys

import numpy as np

from lottery.core import paths

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
