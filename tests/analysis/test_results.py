"""The results module: loading (today's and legacy files), censoring (with the patience
evidence's window), intervals over trial means, pairing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from lottery.analysis import results
from lottery.core import paths


def run(
    trial: int,
    es: int,
    acc: float,
    stop: int = 1000,
    reason: str = "horizon",
    repeat: int = 0,
    pct: float = 80.0,
) -> dict[str, Any]:
    return {
        "trial": trial,
        "repeat": repeat,
        "percent_remaining": pct,
        "early_stop_iteration": es,
        "val_loss_at_early_stop": 0.05,
        "val_accuracy_at_early_stop": acc + 0.001,
        "test_accuracy_at_early_stop": acc,
        "stop_iteration": stop,
        "stop_reason": reason,
        "test_accuracy_at_stop": acc - 0.002,
        "val_loss_at_stop": 0.06,
    }


def metrics(condition: str, rnd: int, runs: dict[str, dict[str, Any]], **top: Any) -> dict:
    pct = next(iter(runs.values()))["percent_remaining"] if runs else 100.0
    return {
        "round": rnd,
        "condition": condition,
        "percent_remaining": pct,
        "eval_every": 100,
        "iterations": 1000,
        "patience": 0,
        "runs": runs,
        **top,
    }


def legacy(condition: str, rnd: int, values: list[tuple[int, float]]) -> dict[str, Any]:
    """A metrics file as the committed 10k result wrote it (no stop fields, final_*)."""
    runs = {
        f"t{t}": {
            "trial": t,
            "repeat": 0,
            "percent_remaining": 100.0,
            "early_stop_iteration": es,
            "test_accuracy_at_early_stop": acc,
            "val_accuracy_at_early_stop": acc,
            "val_loss_at_early_stop": 0.07,
            "final_test_accuracy": acc - 0.001,
            "final_val_loss": 0.09,
        }
        for t, (es, acc) in enumerate(values)
    }
    summary = {"final_test_accuracy": {"mean": 0.0, "min": 0.0, "max": 0.0}}
    return {
        "round": rnd,
        "condition": condition,
        "percent_remaining": 100.0,
        "runs": runs,
        "summary": summary,
    }


# ---------------------------------------------------------------------- censoring


def test_censor_from_is_the_second_to_last_evaluation() -> None:
    assert results.censor_from(10_000, 100) == 9_900
    assert results.censor_from(10_050, 100) == 10_000  # evaluations ... 10000, 10050
    assert results.censor_from(100, 100) == 0  # a single evaluation: always censored


@pytest.mark.parametrize(
    ("reason", "es", "stop", "expected"),
    [
        ("horizon", 9_800, 10_000, False),
        ("horizon", 9_900, 10_000, True),
        ("horizon", 10_000, 10_000, True),
        ("patience", 10_000, 10_000, False),  # stopped by patience: never censored
        ("patience", 4_900, 5_000, False),
        ("horizon", 10_000, 10_050, True),
        ("horizon", 9_900, 10_050, False),
    ],
)
def test_is_censored(reason: str, es: int, stop: int, expected: bool) -> None:
    assert results.is_censored(reason, es, stop, 100) is expected


@pytest.mark.parametrize(
    ("reason", "es", "stop", "expected"),
    [
        ("horizon", 4_900, 10_000, False),  # 5,100 past the minimum: at least W = 5,000
        ("horizon", 5_000, 10_000, False),  # exactly W: the longest wait seen still fits
        ("horizon", 5_100, 10_000, True),
        ("horizon", 9_000, 10_000, True),  # not in the last two evaluations, yet censored
        ("patience", 7_000, 10_000, True),  # a patience of 3,000 < W stops too soon too
        ("patience", 3_000, 13_000, False),  # patience 10,000 >= W
    ],
)
def test_is_censored_with_a_window(reason: str, es: int, stop: int, expected: bool) -> None:
    assert results.is_censored(reason, es, stop, 100, window=5_000) is expected


def new_minima_waits(curve: dict[str, Any]) -> list[int]:
    """Waits between successive strict new minima of a validation curve (written here
    without `lottery.patience`)."""
    best, last, waits = math.inf, None, []
    for it, loss in zip(curve["iteration"], curve["val_loss"], strict=True):
        if loss < best:
            best = loss
            if last is not None:
                waits.append(int(it) - last)
            last = int(it)
    return waits


def test_the_window_is_the_longest_wait_of_the_committed_evidence() -> None:
    runs = json.loads(results.EVIDENCE.read_text())["runs"]
    longest = max(max(new_minima_waits(r), default=0) for r in runs)
    window = results.default_window()
    assert window.iterations == longest
    assert longest > 20 * 100  # far wider than the last two evaluations
    assert f"among the {len(runs)} full-horizon runs" in window.source
    assert "reports/patience/curves.json" in window.source


def test_without_evidence_the_narrowest_rule_applies(tmp_path: Path) -> None:
    window = results.evidence_window(tmp_path / "curves.json")
    assert window.iterations is None and "no patience evidence" in window.source
    m = metrics("reinit", 3, {"t0": run(0, 900, 0.97), "t1": run(1, 800, 0.97)})
    frame = results.runs_frame([m])
    assert results.censor(frame, window)["censored"].tolist() == [True, False]
    assert results.censor(frame, 300)["censored"].tolist() == [True, True]
    assert frame["censored"].tolist() == [True, False]  # the input is left alone


def test_runs_frame_marks_censored_runs_per_run() -> None:
    m = metrics(
        "reinit",
        3,
        {
            "t0": run(0, 900, 0.97),  # 900 >= 1000 - 100: censored
            "t1": run(1, 800, 0.97),
            "t2": run(2, 1000, 0.97, reason="patience"),
        },
    )
    frame = results.runs_frame([m])
    assert frame["censored"].tolist() == [True, False, False]
    cells = results.cell_table(frame)
    assert cells.loc[0, "n_censored"] == 1 and cells.loc[0, "n_runs"] == 3


# ------------------------------------------------------------------------ loading


def test_legacy_files_are_mapped_to_todays_names() -> None:
    old = legacy("ticket", 0, [(800, 0.98), (950, 0.97)])
    m = results.normalise(old, {"eval_every": 100, "iterations": 1000})
    r = m["runs"]["t0"]
    assert r["test_accuracy_at_stop"] == pytest.approx(0.979)
    assert r["val_loss_at_stop"] == 0.09
    assert "final_test_accuracy" not in r and "final_val_loss" not in r
    assert (r["stop_iteration"], r["stop_reason"]) == (1000, "horizon")
    assert (m["eval_every"], m["iterations"], m["patience"]) == (100, 1000, 0)
    assert "test_accuracy_at_stop" in m["summary"] and "final_test_accuracy" not in m["summary"]
    assert old["runs"]["t0"]["final_test_accuracy"] == pytest.approx(0.979)  # input untouched
    frame = results.runs_frame([m])
    assert frame["censored"].tolist() == [False, True]  # censored from 900 of 1000
    with pytest.raises(KeyError, match="eval_every"):
        results.normalise(old)


def test_todays_fields_win_over_defaults() -> None:
    m = metrics("ticket", 0, {"t0": run(0, 500, 0.98, stop=600, reason="patience")})
    m["eval_every"] = 50
    out = results.normalise(m, {"eval_every": 100, "iterations": 1000})
    assert out["eval_every"] == 50 and out["runs"]["t0"]["stop_iteration"] == 600


def write_study(root: Path) -> None:
    (root / "params.yaml").write_text(
        yaml.safe_dump({"train": {"iterations": 1000, "eval_every": 100, "batch_size": 60}})
    )
    files = {
        ("ticket", "r00"): legacy("ticket", 0, [(500, 0.98), (950, 0.97), (700, 0.975)]),
        ("reinit", "r01"): legacy("reinit", 1, [(1000, 0.96)]),
    }
    for (cond, name), m in files.items():
        path = root / paths.metrics_path(cond, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(m))


def test_load_gives_one_row_per_run(tmp_path: Path) -> None:
    write_study(tmp_path)
    frame = results.load(tmp_path)
    assert list(frame.columns[: len(results.RUN_COLUMNS)]) == list(results.RUN_COLUMNS)
    assert set(results.METRIC_COLUMNS) <= set(frame.columns)
    assert len(frame) == 4
    assert frame[["condition", "round", "trial"]].values.tolist() == [
        ["ticket", 0, 0],
        ["ticket", 0, 1],
        ["ticket", 0, 2],
        ["reinit", 1, 0],
    ]
    assert frame["censored"].tolist() == [False, True, False, True]
    assert frame["stop_iteration"].tolist() == [1000] * 4
    assert frame["test_accuracy_at_stop"].tolist() == pytest.approx([0.979, 0.969, 0.974, 0.959])


def test_load_curves_puts_test_metrics_on_their_own_grid(tmp_path: Path) -> None:
    write_study(tmp_path)
    curve: dict[str, Any] = {
        "iteration": [100, 200, 300, 400],
        "train_loss": [0.5, 0.4, 0.3, 0.2],
        "val_loss": [0.4, 0.3, 0.2, 0.25],
        "val_accuracy": [0.9, 0.92, 0.94, 0.93],
        "test_iteration": [200, 400],
        "test_loss": [0.31, 0.26],
        "test_accuracy": [0.915, 0.935],
    }
    curves = {"round": 0, "condition": "ticket", "runs": {"t1": curve}}
    path = tmp_path / paths.curves_path("ticket", "r00")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(curves))
    frame = results.load_curves(tmp_path)  # reinit r01 has no curves file: skipped
    assert frame["iteration"].tolist() == [100, 200, 300, 400]
    assert frame["trial"].tolist() == [1] * 4
    acc = frame["test_accuracy"].tolist()
    assert math.isnan(acc[0]) and math.isnan(acc[2]) and acc[1] == 0.915 and acc[3] == 0.935
    assert frame["val_loss"].tolist() == [0.4, 0.3, 0.2, 0.25]
    # Legacy curves evaluate test on `iteration`.
    del curve["test_iteration"]
    curve["test_accuracy"] = [0.91, 0.915, 0.93, 0.935]
    curve["test_loss"] = [0.3] * 4
    legacy_frame = results.curves_frame(curves)
    assert legacy_frame["test_accuracy"].tolist() == [0.91, 0.915, 0.93, 0.935]
    assert results.load_curves(tmp_path / "nothing").empty


def test_duplicate_condition_round_is_rejected() -> None:
    m = metrics("ticket", 1, {"t0": run(0, 500, 0.98)})
    with pytest.raises(ValueError, match="duplicate"):
        results.runs_frame([m, m])


# ---------------------------------------------------------------------- intervals


def test_interval_is_student_t_and_needs_three_values() -> None:
    assert results.interval([1.0]) is None
    assert results.interval([1.0, 2.0]) is None
    x = [0.1, 0.4, 0.2, 0.9, 0.5]
    ci = results.interval(x)
    assert ci == pytest.approx(sps.t.interval(0.95, 4, loc=np.mean(x), scale=sps.sem(x)))
    assert ci is not None and ci[0] < min(x)  # wider than the data: 5 values say little
    assert results.interval([2.0, 2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_cells_are_over_trial_means() -> None:
    """Mean, min–max and interval of a cell with repeats: all three over trial means."""
    runs = {
        f"t{t}-rep{r}": run(t, 500, acc, repeat=r)
        for t, pair in enumerate([(0.95, 0.99), (0.96, 0.96), (0.97, 0.95)])
        for r, acc in enumerate(pair)
    }
    row = results.cell_table([metrics("reinit", 1, runs)]).iloc[0]
    means = [0.97, 0.96, 0.96]
    assert row["n_runs"] == 6 and row["n_trials"] == 3
    assert row["test_accuracy_at_early_stop_mean"] == pytest.approx(np.mean(means))
    assert row["test_accuracy_at_early_stop_min"] == pytest.approx(0.96)  # not 0.95 (a run)
    assert row["test_accuracy_at_early_stop_max"] == pytest.approx(0.97)  # not 0.99
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(means), scale=sps.sem(means))
    assert row["test_accuracy_at_early_stop_ci_low"] == pytest.approx(lo)
    assert row["test_accuracy_at_early_stop_ci_high"] == pytest.approx(hi)


def test_paired_difference_pairs_by_trial_and_averages_repeats() -> None:
    ticket = metrics(
        "ticket", 1, {f"t{t}": run(t, 500, a) for t, a in enumerate([0.99, 0.97, 0.95])}
    )
    reinit = metrics(
        "reinit",
        1,
        {
            # trial t's two repeats average to ticket - 0.01
            f"t{t}-rep{r}": run(t, 600, a - 0.01 + (0.002 if r else -0.002), repeat=r)
            for t, a in enumerate([0.99, 0.97, 0.95])
            for r in (0, 1)
        },
    )
    d = results.paired_difference(
        [ticket, reinit], "test_accuracy_at_early_stop", ("ticket", 1), ("reinit", 1), scale=100.0
    )
    assert d is not None and d.n_trials == 3
    assert d.mean == pytest.approx(1.0)
    assert d.ci_low == pytest.approx(1.0) and d.ci_high == pytest.approx(1.0)
    assert d.sign == 1
    assert d.p_value is not None and d.p_value < 1e-6
    # Unpaired, the spread between trials (4 pp) would swamp the 1 pp difference.
    cells = results.cell_table([ticket, reinit])
    assert cells.loc[1, "n_runs"] == 6 and cells.loc[1, "n_trials"] == 3
    assert (
        results.paired_difference([ticket], "early_stop_iteration", ("ticket", 1), ("reinit", 1))
        is None
    )


def test_condition_series_counts_censored_points() -> None:
    m = [
        metrics("ticket", 0, {"t0": run(0, 500, 0.98, pct=100.0)}),
        metrics("ticket", 1, {"t0": run(0, 950, 0.98)}),
        metrics("random", 1, {"t0": run(0, 990, 0.97), "t1": run(1, 100, 0.96)}),
    ]
    series = results.condition_series(m, "early_stop_iteration")
    assert list(series) == ["ticket", "random"]
    assert series["ticket"].n_censored == [0, 1]
    assert series["random"].n_censored == [1] and series["random"].mean == [545.0]
    assert series["random"].has_band and not series["ticket"].has_band
