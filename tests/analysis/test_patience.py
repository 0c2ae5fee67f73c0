"""The stopping rule and the patience evidence: hand-made curves with known answers,
and the evidence command on a real (tiny) study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lottery.analysis import patience
from lottery.analysis.patience import (
    RunCurve,
    evidence,
    outcome,
    smallest_safe_patience,
    stop_profile,
)
from lottery.core.stopping import Tracker, replay

#: Evaluations every 100 iterations to a 1,000-iteration horizon.
ITS = [float(i) for i in range(100, 1001, 100)]


def curve(val: list[float], cond: str = "ticket", run: str = "t0", rnd: int = 0) -> RunCurve:
    acc = [0.9 + i / 1000 for i in range(len(val))]  # a distinct accuracy per evaluation
    return RunCurve(cond, rnd, run, 1000, ITS, val, ITS, acc)


def test_replay_stops_patience_iterations_after_the_best() -> None:
    val = [0.9, 0.5, 0.4, 0.45, 0.41, 0.42, 0.39, 0.5, 0.6, 0.7]  # best at 300, then 700
    assert replay(ITS, val, 300, 1000) == replay(ITS, val, 300, 1000)
    r = replay(ITS, val, 300, 1000)
    assert (ITS[r.best_index], ITS[r.stop_index], r.reason) == (300, 600, "patience")
    r = replay(ITS, val, 400, 1000)  # long enough to see the later minimum
    assert (ITS[r.best_index], ITS[r.stop_index], r.reason) == (700, 1000, "horizon")
    r = replay(ITS, val, 0, 1000)
    assert (ITS[r.best_index], ITS[r.stop_index], r.reason) == (700, 1000, "horizon")


def test_ties_keep_the_earliest_minimum() -> None:
    val = [0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    r = replay(ITS, val, 300, 1000)
    assert (ITS[r.best_index], ITS[r.stop_index]) == (200, 500)


def test_replay_refuses_a_curve_too_short_to_decide() -> None:
    with pytest.raises(ValueError, match="longer curve"):
        replay(ITS[:5], [0.5, 0.4, 0.3, 0.2, 0.1], 300, 1000)
    with pytest.raises(ValueError):
        replay([], [], 300, 1000)
    with pytest.raises(ValueError):
        Tracker(-1, 1000)


def test_outcome_reads_the_test_accuracy_at_the_replayed_early_stop() -> None:
    c = curve([0.9, 0.5, 0.4, 0.45, 0.41, 0.42, 0.39, 0.5, 0.6, 0.7])
    assert outcome(c, 300).early_stop_iteration == 300
    assert outcome(c, 300).test_accuracy_at_early_stop == c.test_accuracy[2]
    assert outcome(c, 300).stop_iteration == 600
    assert outcome(c, 0).test_accuracy_at_early_stop == c.test_accuracy[6]


def test_the_smallest_safe_patience_is_the_longest_wait_between_new_minima() -> None:
    c = curve([0.9, 0.5, 0.4, 0.45, 0.41, 0.42, 0.39, 0.5, 0.6, 0.7])  # minima 100..300, 700
    assert smallest_safe_patience(c) == 400
    assert outcome(c, 400).early_stop_iteration == outcome(c, 0).early_stop_iteration == 700
    assert outcome(c, 300).early_stop_iteration == 300  # one evaluation less is not enough
    assert smallest_safe_patience(curve([0.5] * 10)) == 0  # one minimum, no wait
    rows = evidence([c, curve([0.9, 0.8, 0.7] + [0.6] * 7, run="t1")], [300])
    assert [r.smallest_safe_patience for r in rows] == [400]
    assert "wait between two successive new minima of the validation loss): ticket 400." in (
        patience.markdown(rows, "`x`")
    )


def test_the_committed_evidence_is_what_its_curves_give(tmp_path: Path) -> None:
    """reports/patience/evidence.* are written from its curves.json by this code."""
    committed = Path(__file__).resolve().parents[2] / "reports" / "patience"
    doc = json.loads((committed / "evidence.json").read_text())
    patiences = sorted({int(r["patience"]) for r in doc["rows"]})
    patience.write(
        patience.from_file(committed / "curves.json"), patiences, tmp_path, doc["source"]
    )
    assert json.loads((tmp_path / "evidence.json").read_text()) == doc
    assert (tmp_path / "evidence.md").read_text() == (committed / "evidence.md").read_text()


def test_evidence_counts_changed_runs_per_condition() -> None:
    late = [0.9, 0.5, 0.4, 0.45, 0.41, 0.42, 0.39, 0.5, 0.6, 0.7]  # 300 then 700
    steady = [0.9, 0.5, 0.4, 0.3, 0.35, 0.36, 0.37, 0.38, 0.39, 0.4]  # best at 400
    curves = [
        curve(late, "ticket", "t0"),
        curve(steady, "ticket", "t1"),
        curve(steady, "reinit", "t0-rep0"),
    ]
    rows = {(r.condition, r.patience): r for r in evidence(curves, [300, 400])}
    t300 = rows[("ticket", 300)]
    assert (t300.runs, t300.early_stop_unchanged, t300.accuracy_unchanged) == (2, 1, 1)
    assert t300.max_accuracy_change_pp == pytest.approx(0.4)  # 0.906 vs 0.902
    assert t300.iterations_trained == pytest.approx((600 + 700) / 2000)
    assert rows[("ticket", 400)].fractions == (1.0, 1.0)
    assert rows[("reinit", 300)].fractions == (1.0, 1.0)
    profile = stop_profile(curves, 300)
    assert profile == {"ticket": {0: pytest.approx(0.65)}, "reinit": {0: pytest.approx(0.7)}}


def test_the_evidence_command_on_a_real_study(tiny_study: Path, tmp_path: Path) -> None:
    """Runs on a study's real curves, writes its files, and recomputes from them alone."""
    out = tmp_path / "evidence"
    cmd = [
        str(Path(sys.executable).with_name("lottery")),
        "patience",
        str(tiny_study),
        "--patience",
        "10",
        "20",
    ]
    first = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, check=True)
    assert "| ticket | 20 |" in first.stdout
    doc = json.loads((out / "evidence.json").read_text())
    n_runs = sum(
        len(json.loads(p.read_text())["runs"]) for p in (tiny_study / "metrics").glob("*/*.json")
    )
    assert doc["runs"] == n_runs
    assert {r["condition"] for r in doc["rows"]} == {"ticket", "reinit", "random"}
    assert (out / "params.yaml").read_text() == (tiny_study / "params.yaml").read_text()
    again = subprocess.run(
        [*cmd[:2], str(out), "--patience", "10", "20"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout == first.stdout
    bad = subprocess.run(
        [*cmd[:2], str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
