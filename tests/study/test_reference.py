"""No behaviour change: the tiny study gives bit-identical masks, weights and metrics.

`tests/data/study_reference.json` was produced by an earlier version of this code on the
same params as the session's `tiny_study` (conftest's TINY). It records every mask's and
every weights file's canonical hash and every metrics file. Refactors must reproduce all of
them exactly; only names may change (run keys are mapped to today's `paths.run_key`, the
old `final_*` numbers are today's `*_at_stop`).

One exception, older than the test: the validation loss is summed in another order since
the reference was made, so val losses may differ in the last bits of float32 (at most
`VAL_LOSS_ULPS` units in the last place). Accuracies, iterations and hashes are exact.

Masks and metrics are the same on every CPU measured. The trained weights' last bits are
not: XLA compiles for the CPU's vector extensions, so the reference keeps one set of
weights hashes per CPU family (`weights_by_cpu`), and a run here must reproduce its own
family's exactly (`tests.helpers.bits_of_this_cpu`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lottery.core import paths
from lottery.core.arch import LENET
from lottery.core.machine import describe
from lottery.core.masks import load_mask, load_weights, mask_hash, weights_hash
from tests.helpers import bits_of_this_cpu, new_cpu_hint

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "study_reference.json").read_text())
# Run keys as the reference spells them: `t0`, and `t0r1` for trial 0's reinit repeat 1.
_OLD_KEY = re.compile(r"^t(\d+)(?:r(\d+))?$")
# Old metric name -> today's, for every per-run number the reference records.
RUN_METRICS = {
    "early_stop_iteration": "early_stop_iteration",
    "test_accuracy_at_early_stop": "test_accuracy_at_early_stop",
    "val_accuracy_at_early_stop": "val_accuracy_at_early_stop",
    "final_test_accuracy": "test_accuracy_at_stop",
    "percent_remaining": "percent_remaining",
    "trial": "trial",
    "repeat": "repeat",
}
VAL_LOSSES = {
    "val_loss_at_early_stop": "val_loss_at_early_stop",
    "final_val_loss": "val_loss_at_stop",
}
VAL_LOSS_ULPS = 2


def ulps(a: float, b: float) -> float:
    """Distance between two float32 numbers in units in the last place."""
    return float(abs(np.float32(a) - np.float32(b)) / np.spacing(np.float32(a)))


def current_key(old: str) -> str:
    m = _OLD_KEY.match(old)
    assert m is not None, f"unexpected run key {old!r} in the reference"
    return paths.run_key(int(m[1]), None if m[2] is None else int(m[2]))


def current_path(old: str) -> str:
    """The reference's path with each run-key component spelled as today's layout does."""
    parts = old.split("/")
    return "/".join(current_key(p) if _OLD_KEY.match(p) else p for p in parts)


def test_reference_covers_the_whole_tiny_study() -> None:
    # 2 trials: m_0, 3 ticket rounds' m_{k+1}, a reinit and a random mask in rounds 1 and 2.
    assert len(REFERENCE["masks"]) == 2 * (1 + 3 + 2 + 2)
    assert len(REFERENCE["metrics"]) == 7
    assert any("/reinit/" in p for p in REFERENCE["masks"])
    assert any("/random/" in p for p in REFERENCE["masks"])


def mask_differs(study: Path, old: str) -> bool:
    """Whether the study's mask `old` differs from the reference's, bit for bit."""
    got = mask_hash(load_mask(study / current_path(old), arch=LENET), arch=LENET)
    return got != REFERENCE["masks"][old]


@pytest.mark.parametrize("old", sorted(REFERENCE["masks"]))
def test_mask_is_bit_identical(tiny_study: Path, old: str) -> None:
    assert not mask_differs(tiny_study, old), f"{current_path(old)} differs from the reference"


WEIGHTS = sorted(REFERENCE["weights_by_cpu"][0]["hashes"])


def weights_hashes(study: Path) -> dict[str, str]:
    return {
        old: weights_hash(load_weights(study / current_path(old), arch=LENET), arch=LENET)
        for old in WEIGHTS
    }


@pytest.fixture(scope="module")
def weights_pair(tiny_study: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The tiny study's weights hashes, and the ones recorded for this CPU family."""
    got = weights_hashes(tiny_study)
    recorded = bits_of_this_cpu(
        REFERENCE["weights_by_cpu"],
        lambda entry: sum(got[k] == v for k, v in entry["hashes"].items()),
        "study",
    )
    return got, recorded


def test_every_cpu_family_records_the_same_weights_files() -> None:
    for entry in REFERENCE["weights_by_cpu"]:
        assert sorted(entry["hashes"]) == WEIGHTS, entry["cpu"]
    cpus = [entry["cpu"] for entry in REFERENCE["weights_by_cpu"]]
    assert len(set(cpus)) == len(cpus), cpus


@pytest.mark.parametrize("old", WEIGHTS)
def test_weights_are_bit_identical(
    weights_pair: tuple[dict[str, str], dict[str, Any]], old: str
) -> None:
    got, recorded = weights_pair
    new_cpu = "" if recorded["cpu"] == describe() else f" ({new_cpu_hint('study')})"
    assert got[old] == recorded["hashes"][old], (
        f"{current_path(old)} differs from the reference recorded on {recorded['cpu']}{new_cpu}"
    )


def metrics_disagreements(study: Path, old: str) -> list[str]:
    """Where the study's metrics file `old` disagrees with the reference (empty: none)."""
    ref: dict[str, Any] = REFERENCE["metrics"][old]
    got = json.loads((study / old).read_text())
    out = [
        f"{old}: {k}"
        for k in ("round", "condition", "percent_remaining", "density")
        if got[k] != ref[k]
    ]
    if sorted(got["runs"]) != sorted(current_key(k) for k in ref["runs"]):
        return [*out, f"{old}: runs {sorted(got['runs'])}"]
    for key, run in ref["runs"].items():
        mine = got["runs"][current_key(key)]
        out += [
            f"{old} run {key}: {name}"
            for old_name, name in RUN_METRICS.items()
            if mine[name] != run[old_name]
        ]
        out += [
            f"{old} run {key}: {name}"
            for old_name, name in VAL_LOSSES.items()
            if ulps(mine[name], run[old_name]) > VAL_LOSS_ULPS
        ]
    summary = {
        "early_stop_iteration": "early_stop_iteration",
        "test_accuracy_at_early_stop": "test_accuracy_at_early_stop",
        "test_accuracy_at_stop": "final_test_accuracy",
    }
    out += [
        f"{old}: summary {name}"
        for name, old_name in summary.items()
        if got["summary"][name] != ref["summary"][old_name]
    ]
    return out


def disagreements(study: Path) -> list[str]:
    """Every mask and metrics file of `study` that disagrees with the reference: what
    `python -m tests.make_study_reference --add-cpu` requires to be empty."""
    masks = [current_path(old) for old in sorted(REFERENCE["masks"]) if mask_differs(study, old)]
    return masks + [
        d for old in sorted(REFERENCE["metrics"]) for d in metrics_disagreements(study, old)
    ]


@pytest.mark.parametrize("old", sorted(REFERENCE["metrics"]))
def test_metrics_are_identical(tiny_study: Path, old: str) -> None:
    assert metrics_disagreements(tiny_study, old) == []
