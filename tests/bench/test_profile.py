"""Where the paper estimate reads a kept study: the settle points of a study of today's
protocol (a ticket that trains to the horizon records its stop there, not where it
settled), and its measured wall-clock (`wallclock.json`), read only for the same protocol
and plan and set against the estimate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lottery.bench.estimate import UnitCosts, paper_estimate
from lottery.bench.profile import (
    StopProfile,
    Wallclock,
    WallclockError,
    measured_wallclock,
    settled_fraction,
    study_settled,
)
from lottery.core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "presets" / "paper.yaml"
RECORD: dict[str, Any] = {
    "seconds": 5400.0,
    "machine": "2-core x86-64 CPU, no GPU",
    "commit": "f1ed15e",
    "started": "2026-12-01T08:00:00+00:00",
    "finished": "2026-12-01T09:30:00+00:00",
}


def kept_study(results: Path, name: str, params: Path, record: Any = RECORD) -> Path:
    """A temp copy of a committed study's metrics, with `params` as its params.yaml and
    `record` (unless None) as its wallclock.json."""
    study = results / name
    src = ROOT / "reports" / "results" / "lenet-5trials-50k" / "metrics"
    shutil.copytree(src, study / "metrics")
    shutil.copyfile(params, study / "params.yaml")
    if record is not None:
        text = record if isinstance(record, str) else json.dumps(record)
        (study / "wallclock.json").write_text(text)
    return study


def changed_preset(tmp_path: Path, section: str, values: dict[str, Any]) -> Path:
    raw = yaml.safe_load(PAPER.read_text())
    raw[section].update(values)
    out = tmp_path / f"{section}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def test_a_ticket_trained_to_the_horizon_settled_patience_after_its_early_stop() -> None:
    ticket = {"early_stop_iteration": 3900, "stop_iteration": 50_000, "stop_reason": "horizon"}
    assert settled_fraction(ticket, 50_000, 10_000) == 13_900 / 50_000
    late = {"early_stop_iteration": 45_000, "stop_iteration": 50_000, "stop_reason": "horizon"}
    assert settled_fraction(late, 50_000, 10_000) == 1.0
    assert settled_fraction(ticket, 50_000, 0) == 1.0  # patience 0: nothing settles


def test_a_study_of_todays_protocol_gives_its_settle_points(tmp_path: Path) -> None:
    """Round 0 written as today's engine records it: every ticket stopped at the horizon."""
    study = tmp_path / "results" / "today"
    (study / "metrics" / "ticket").mkdir(parents=True)
    shutil.copyfile(PAPER, study / "params.yaml")
    runs = {
        f"t{i}": {"early_stop_iteration": es, "stop_iteration": 50_000, "stop_reason": "horizon"}
        for i, es in enumerate((2100, 3900, 45_000))
    }
    metrics = {"condition": "ticket", "round": 0, "iterations": 50_000, "runs": runs}
    (study / "metrics" / "ticket" / "r00.json").write_text(json.dumps(metrics))
    source, settled = study_settled(tmp_path / "results", PAPER)
    assert source == str(study)
    assert settled == {"ticket": {0: [12_100 / 50_000, 13_900 / 50_000, 1.0]}}


def test_the_measured_wallclock_of_the_same_protocol_and_plan(tmp_path: Path) -> None:
    results = tmp_path / "results"
    kept_study(results, "a-other-plan", changed_preset(tmp_path, "controls", {"reinit_repeats": 1}))
    kept_study(results, "b-other-patience", changed_preset(tmp_path, "train", {"patience": 5000}))
    kept_study(results, "c-no-record", PAPER, record=None)
    study = kept_study(results, "d-paper", PAPER)
    found = measured_wallclock(results, PAPER)
    assert found == (str(study), Wallclock(**RECORD))
    (study / "wallclock.json").unlink()
    assert measured_wallclock(results, PAPER) is None


def test_the_estimate_is_set_against_the_measured_wallclock(tmp_path: Path) -> None:
    study = kept_study(tmp_path / "results", "paper", PAPER)
    measured = measured_wallclock(tmp_path / "results", PAPER)
    costs = {k: UnitCosts(k, 0.1 * k, 0.02 * k, 0.04 * k) for k in (1, 5, 10)}
    startup = {"stage_overhead_s": 8.0, "compile_train_s": 1.0, "compile_eval_s": 0.5}
    profile = StopProfile("test", 10_000, {"ticket": {0: [0.3]}}, [[] for _ in range(5)])
    est = paper_estimate(costs, startup, profile, PAPER, measured)
    assert est["measured"] == {
        **RECORD,
        "study": str(study),
        "estimate_over_measured": est["total_s"] / 5400.0,
    }


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ("{not json", "not readable as JSON"),
        ("[1, 2]", "not a JSON object"),
        ({k: v for k, v in RECORD.items() if k != "commit"}, "field(s) commit"),
        ({**RECORD, "note": "x"}, "field(s) note"),
        ({**RECORD, "seconds": "5400"}, "seconds must be a number"),
        ({**RECORD, "seconds": -1.0}, "seconds must be positive"),
        ({**RECORD, "machine": ""}, "are text"),
        ({**RECORD, "finished": "yesterday"}, "ISO 8601"),
    ],
)
def test_a_bad_wallclock_record_is_one_error_line(
    tmp_path: Path, record: Any, problem: str
) -> None:
    study = kept_study(tmp_path / "results", "paper", PAPER, record=record)
    with pytest.raises(WallclockError) as err:
        measured_wallclock(tmp_path / "results", PAPER)
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message
    assert message.startswith(f"{study / 'wallclock.json'}: ") and problem in message
    assert "fix or remove" in message


def test_the_bench_refuses_at_once_without_the_patience_evidence(tmp_path: Path) -> None:
    """The paper preset's patience is priced from reports/patience: without it the bench
    stops before measuring anything (it used to fail after its whole run)."""
    from lottery.bench.main import stop_profile
    from lottery.core.paths import Layout

    shutil.copytree(ROOT / "presets", tmp_path / "presets")
    with pytest.raises(
        UserError, match=r"curves.json: not found.*git checkout -- reports/patience"
    ):
        stop_profile(Layout(tmp_path))
    shutil.copytree(ROOT / "reports" / "patience", tmp_path / "reports" / "patience")
    assert stop_profile(Layout(tmp_path)) is not None
