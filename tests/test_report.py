"""The report: sentences and table cells computed from hand-built metrics with known answers.

With 3 trials the 95% bootstrap interval of a mean is exactly [min, max] of the three
values (each extreme resample has probability 1/27 > 2.5%), so the intervals below are
known by hand.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lottery import report

HORIZON = 10_000


def metrics(
    condition: str,
    rnd: int,
    pct: float,
    es: list[int],
    acc: list[float],
    val: list[float] | None = None,
    reasons: list[str] | None = None,
) -> dict[str, Any]:
    """One run per trial: early stop `es`, test accuracy `acc` (accuracy when training
    stopped = acc - 0.001), validation accuracy `val` (default: acc)."""
    val = acc if val is None else val
    reasons = reasons or ["horizon"] * len(es)
    runs = {
        f"t{i}": {
            "trial": i,
            "repeat": 0,
            "percent_remaining": pct,
            "early_stop_iteration": e,
            "val_loss_at_early_stop": 0.06,
            "val_accuracy_at_early_stop": v,
            "test_accuracy_at_early_stop": a,
            "stop_iteration": HORIZON,
            "stop_reason": why,
            "test_accuracy_at_stop": a - 0.001,
            "val_loss_at_stop": 0.07,
        }
        for i, (e, a, v, why) in enumerate(zip(es, acc, val, reasons, strict=True))
    }
    return {
        "round": rnd,
        "condition": condition,
        "percent_remaining": pct,
        "eval_every": 100,
        "iterations": HORIZON,
        "patience": 0,
        "runs": runs,
    }


def study() -> list[dict[str, Any]]:
    """Three trials.

    dense:      es 1000 x3, test 98.00 x3
    ticket r1:  es 600/700/800, test 98.3/98.4/98.5 (+0.3..+0.5 vs dense), best validation
    ticket r2:  es 400/500/600, test 98.6/98.7/98.8: the best on test, not on validation
    ticket r3:  es 900/1000/1100, test 97.9/98.2/98.5: -0.1..+0.5 vs dense (straddles 0)
    reinit r1:  test 98.0/98.1/98.2: ticket − reinit = +0.3 in every trial
    reinit r3:  es 9900/10000/9000 (2 censored), test 98.0/98.1/98.2: −0.1..+0.3
    """
    return [
        metrics("ticket", 0, 100.0, [1000] * 3, [0.980] * 3),
        metrics("ticket", 1, 80.0, [600, 700, 800], [0.983, 0.984, 0.985], [0.990] * 3),
        metrics("ticket", 2, 64.0, [400, 500, 600], [0.986, 0.987, 0.988], [0.985] * 3),
        metrics("ticket", 3, 51.2, [900, 1000, 1100], [0.979, 0.982, 0.985], [0.980] * 3),
        metrics("reinit", 1, 80.0, [1200, 1300, 1400], [0.980, 0.981, 0.982]),
        metrics("reinit", 3, 51.2, [9900, 10000, 9000], [0.980, 0.981, 0.982]),
    ]


def claims_by_start(claims: list[str]) -> dict[str, str]:
    return {c.split(" ")[0] + " " + c.split(" ")[1]: c for c in claims}


# --------------------------------------------------------------------------- table


def test_table_rows_order_and_cells() -> None:
    shuffled = study()
    random.Random(0).shuffle(shuffled)
    lines = report.markdown_table(report.cells(shuffled)).strip().splitlines()
    assert lines[0] == (
        "| condition | % weights remaining | early-stop iteration "
        "| test acc. at early stop | test acc. when training stopped |"
    )
    body = lines[2:]
    assert [line.split(" | ")[0] for line in body] == [
        "| dense (round 0)",
        "| ticket, round 1",
        "| ticket, round 2",
        "| ticket, round 3",
        "| reinit control, round 1",
        "| reinit control, round 3",
    ]
    assert body[1] == (
        "| ticket, round 1 | 80.0 | 700 (600–800) [600, 800] | 98.40 (98.30–98.50) "
        "[98.30, 98.50] | 98.30 (98.20–98.40) [98.20, 98.40] |"
    )


def test_censored_cell_is_a_lower_bound_with_its_count() -> None:
    body = report.markdown_table(report.cells(study())).strip().splitlines()[2:]
    assert body[5] == (
        "| reinit control, round 3 | 51.2 | ≥ 9633 (9000–10000) [9000, 10000], 2/3 censored "
        "| 98.10 (98.00–98.20) [98.00, 98.20] * | 98.00 (97.90–98.10) [97.90, 98.10] * |"
    )
    assert "≥" not in body[4] and "*" not in body[4]


def test_censoring_sentence() -> None:
    claims = report.summary_claims(study())
    assert claims[0] == (
        "2 of 18 runs are censored: training reached its last iteration with the minimum "
        "validation loss in the last two evaluations (reinit control round 3 (2/3)). Their "
        "early-stop iterations are lower bounds and their accuracies may be understated."
    )
    assert (
        "The reinit control's mean early-stop iteration goes from 1300 at 80.0% (round 1) to "
        "≥ 9633 at 51.2% (round 3; 2/3 runs censored), and its mean test accuracy at early "
        "stop from 98.10% to 98.10%."
    ) in claims


def test_sentences_using_a_censored_ticket_cell_say_so() -> None:
    m = study()
    m[3]["runs"]["t0"]["early_stop_iteration"] = 9900  # ticket round 3, trial 0
    claims = report.summary_claims(m)
    note = " The ticket of round 3 has 1/3 runs censored: its accuracy may be understated."
    floor = next(c for c in claims if c.startswith("Tickets match"))
    gap = next(c for c in claims if c.startswith("Round 3 "))
    assert floor.endswith("(95% interval -0.10 to +0.50, 3 trials): no clear difference." + note)
    assert gap.endswith("its accuracy may be understated)." + note)
    assert sum(note in c for c in claims) == 2
    assert claims[0].startswith("3 of 18 runs are censored")
    assert "ticket rounds" not in claims[0] and "ticket round 3 (1/3)" in claims[0]


def test_a_run_stopped_by_patience_is_not_censored() -> None:
    m = study()
    m[5] = metrics(
        "reinit", 3, 51.2, [9900, 10000, 9000], [0.98, 0.981, 0.982], reasons=["patience"] * 3
    )
    claims = report.summary_claims(m)
    assert claims[0] == (
        "No run is censored: every run reached its minimum validation loss before the last "
        "two evaluations of its training, or was stopped by patience."
    )
    assert "≥" not in report.markdown_table(report.cells(m))


# ------------------------------------------------------------------------- summary


def test_earliest_stop_sentence() -> None:
    claims = report.summary_claims(study())
    assert claims[1] == (
        "The earliest-stopping ticket is round 2 (64.0% of weights remaining): mean early-stop "
        "iteration 500 vs 1000 for the dense network, a factor of 2.0 (dense ÷ ticket); "
        "dense − ticket = +500 iterations (95% interval +400 to +600, 3 trials): the ticket "
        "stops earlier."
    )


def test_best_ticket_is_picked_on_validation_not_test() -> None:
    s = report.compute_summary(study())
    assert s.best is not None and s.best.ticket.round == 1 and s.best.test_best.round == 2
    assert report.summary_claims(s)[2] == (
        "Chosen by mean validation accuracy at early stop, the best ticket is round 1 (80.0% "
        "of weights remaining), with 99.00% on validation; its mean test accuracy at early "
        "stop is 98.40% vs 98.00% for the dense network; ticket − dense = +0.40 pp (95% "
        "interval +0.30 to +0.50, 3 trials): the ticket is more accurate. Round 2 has the "
        "highest mean test accuracy (98.70%), but a round picked on test accuracy would "
        "overstate the gain."
    )


def test_floor_at_the_last_round_is_a_lower_bound() -> None:
    s = report.compute_summary(study())
    assert s.floor is not None and s.floor.ticket.round == 3 and s.floor.is_sparsest_run
    assert report.summary_claims(s)[3] == (
        "Tickets match dense (mean test accuracy at early stop at least the dense network's "
        "98.00% minus 0.00 pp) down to at least 51.2% (the sparsest round run): round 3 has "
        "98.20%, ticket − dense = +0.20 pp (95% interval -0.10 to +0.50, 3 trials): no clear "
        "difference."
    )


def test_floor_before_the_last_round() -> None:
    m = [*study()[:3], metrics("ticket", 3, 51.2, [900] * 3, [0.975, 0.976, 0.977])]
    s = report.compute_summary(m)
    assert s.floor is not None and s.floor.ticket.round == 2 and not s.floor.is_sparsest_run
    assert s.floor.sparser_rounds == (3,)
    floor = next(c for c in report.summary_claims(s) if c.startswith("Tickets match"))
    assert floor == (
        "Tickets match dense (mean test accuracy at early stop at least the dense network's "
        "98.00% minus 0.00 pp) down to 64.0%: round 2 has 98.70%, ticket − dense = +0.70 pp "
        "(95% interval +0.60 to +0.80, 3 trials): the ticket is more accurate. The sparser "
        "round 3 does not match."
    )
    # A tolerance of 0.4 pp lets round 3 (97.60%) match: it becomes the floor; 0.39 does not.
    s = report.compute_summary(m, tolerance_pp=0.4)
    assert s.floor is not None and s.floor.ticket.round == 3 and s.floor.is_sparsest_run
    s = report.compute_summary(m, tolerance_pp=0.39)
    assert s.floor is not None and s.floor.ticket.round == 2
    with pytest.raises(ValueError):
        report.compute_summary(m, tolerance_pp=-1)


def test_no_ticket_matches_dense() -> None:
    m = [
        metrics("ticket", 0, 100.0, [1000] * 3, [0.98] * 3),
        metrics("ticket", 1, 80.0, [1500] * 3, [0.975, 0.976, 0.977]),
    ]
    s = report.compute_summary(m)
    assert s.floor is None
    claims = report.summary_claims(s)
    assert (
        "No pruned ticket matches dense (mean test accuracy at early stop at least the dense "
        "network's 98.00% minus 0.00 pp)."
    ) in claims
    assert claims[1].endswith(
        "dense − ticket = -500 iterations (95% interval -500 to -500, 3 trials): the ticket "
        "stops later."
    )
    assert claims[2].endswith(
        "ticket − dense = -0.40 pp (95% interval -0.50 to -0.30, 3 trials): the ticket is "
        "less accurate."
    )
    assert claims[-1].startswith("No control runs")


def test_interval_that_excludes_zero_and_one_that_straddles_it() -> None:
    claims = report.summary_claims(study())
    assert (
        "Round 1 (80.0% remaining), test accuracy at early stop: ticket − reinit = +0.30 pp "
        "(95% interval +0.30 to +0.30, 3 trials): the ticket is more accurate."
    ) in claims
    assert (
        "Round 3 (51.2% remaining), test accuracy at early stop: ticket − reinit = +0.10 pp "
        "(95% interval -0.10 to +0.30, 3 trials): no clear difference (reinit: 2/3 runs "
        "censored, its accuracy may be understated)."
    ) in claims


def test_an_interval_whose_printed_end_is_zero_is_no_clear_difference() -> None:
    m = [
        metrics("ticket", 1, 80.0, [500] * 3, [0.98, 0.981, 0.982]),
        metrics("reinit", 1, 80.0, [500] * 3, [0.98 - 1e-7, 0.978, 0.976]),
    ]
    text = "\n".join(report.summary_claims(m))
    assert "ticket − reinit = +0.30 pp (95% interval +0.00 to +0.60, 3 trials): no clear" in text


def one_and_two_trials() -> list[dict[str, Any]]:
    return [
        metrics("ticket", 0, 100.0, [900, 1100], [0.980, 0.982]),
        metrics("ticket", 1, 80.0, [700, 900], [0.985, 0.985]),
        metrics("reinit", 1, 80.0, [1200], [0.98]),
    ]


def test_one_and_two_trials_give_no_interval() -> None:
    m = one_and_two_trials()
    body = report.markdown_table(report.cells(m)).strip().splitlines()[2:]
    assert body[0] == (
        "| dense (round 0) | 100.0 | 1000 (900–1100) [no interval: 2 trials] "
        "| 98.10 (98.00–98.20) [no interval: 2 trials] "
        "| 98.00 (97.90–98.10) [no interval: 2 trials] |"
    )
    assert body[2] == "| reinit control, round 1 | 80.0 | 1200 | 98.00 | 97.90 |"
    claims = report.summary_claims(m)
    assert claims[1].endswith("dense − ticket = +200 iterations (2 trials: no interval possible).")
    assert claims[2].endswith("ticket − dense = +0.40 pp (2 trials: no interval possible).")
    assert claims[-1] == (
        "Round 1 (80.0% remaining), test accuracy at early stop: ticket − reinit = +0.50 pp "
        "(1 trial: no interval possible)."
    )


def test_ties_pick_the_sparsest_and_say_so() -> None:
    m = [
        metrics("ticket", 0, 100.0, [1000], [0.98]),
        metrics("ticket", 1, 80.0, [500], [0.985]),
        metrics("ticket", 2, 64.0, [500], [0.985]),
        metrics("ticket", 3, 51.2, [700], [0.98]),
    ]
    s = report.compute_summary(m)
    assert s.earliest is not None and s.earliest.ticket.round == 2
    assert s.earliest.tied_rounds == (1,)
    assert s.best is not None and s.best.ticket.round == 2 and s.best.tied_rounds == (1,)
    assert s.floor is not None and s.floor.ticket.round == 3  # equal to dense counts
    assert sum("tied with round 1" in c for c in report.summary_claims(m)) == 2


def test_only_round_zero_and_nothing() -> None:
    m = [metrics("ticket", 0, 100.0, [1000, 1200], [0.98, 0.982])]
    s = report.compute_summary(m)
    assert s.tickets == () and s.earliest is None and s.best is None and s.gaps == ()
    assert report.summary_claims(m)[1] == (
        "Only the dense network (round 0) has been trained: mean early-stop iteration 1100, "
        "mean test accuracy at early stop 98.10%; there are no pruned tickets to compare."
    )
    assert report.summary_claims([]) == [
        "No ticket results were found, so there is nothing to summarise."
    ]


def test_missing_dense_round() -> None:
    m = [metrics("ticket", 1, 80.0, [500], [0.98]), metrics("reinit", 1, 80.0, [600], [0.97])]
    s = report.compute_summary(m)
    assert s.dense is None and s.earliest is not None and s.earliest.vs_dense is None
    text = "\n".join(report.summary_claims(m))
    assert "dense network (round 0) is missing" in text
    assert "ticket − reinit = +1.00 pp (1 trial: no interval possible)" in text


# ---------------------------------------------------------------------- summary.json


def test_summary_json_carries_the_same_facts() -> None:
    s = report.compute_summary(study())
    out = report.summary_json(s, report.cells(study()))
    assert out["runs"] == 18 and out["censored_runs"] == 2
    assert out["best_ticket_round"] == 1 and out["test_best_ticket_round"] == 2
    assert out["best_ticket_gain_pp"]["mean"] == pytest.approx(0.4)
    assert out["best_ticket_gain_pp"]["ci_low"] == pytest.approx(0.3)
    assert out["sparsest_matching_round"] == 3 and out["sparsest_matching_is_sparsest_run"]
    assert out["earliest_stop_dense_minus_ticket"]["ci_high"] == pytest.approx(600)
    # Compact for `dvc exp show`: two means per (condition, round), nothing per run.
    compact = out["by_round"]["reinit_r03"]
    assert set(compact) == {"early_stop", "test_acc"}
    assert "cells" not in out and "ticket_minus_control_pp" not in out
    stats = report.statistics_json(s, report.cells(study()))
    cell = stats["cells"]["reinit"]["r03"]
    assert cell["n_censored"] == 2 and cell["early_stop_iteration"]["ci_low"] == 9000
    assert cell["early_stop_iteration"]["mean"] == compact["early_stop"]
    assert cell["test_accuracy_at_early_stop"]["mean"] == compact["test_acc"]
    gap = stats["ticket_minus_control_pp"]["reinit"]["r03"]
    assert gap["ci_low"] == pytest.approx(-0.1) and gap["ci_high"] == pytest.approx(0.3)
    json.dumps(out)  # plain JSON
    json.dumps(stats)
    two = report.compute_summary(one_and_two_trials())
    assert report.summary_json(two, report.cells(one_and_two_trials()))["best_ticket_gain_pp"] == {
        "mean": pytest.approx(0.4),
        "ci_low": None,
        "ci_high": None,
        "n_trials": 2,
    }


# -------------------------------------------------------------------------- report


def test_render_report(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    figures = {
        "accuracy_vs_remaining": report_dir / "figures" / "accuracy_vs_remaining.png",
        "masks/r03_fc1_mask": Path("figures/masks/r03_fc1_mask.png"),
    }
    params = {"study": {"rounds": 3, "trials": 3}, "train": {"lr": 0.0012, "batch": 60}}
    text = report.render_report(study(), figures, params, "abc123", "deadbeef", report_dir)
    assert text.startswith("# ")
    for claim in report.summary_claims(study()):
        assert f"- {claim}" in text
    assert report.markdown_table(report.cells(study())).strip() in text
    assert "](figures/accuracy_vs_remaining.png)" in text  # absolute -> relative
    assert "](figures/masks/r03_fc1_mask.png)" in text  # relative kept as is
    assert "Round 3: first-layer mask" in text
    assert "Runs per (condition, round): ticket 3; reinit 3." in text
    assert "`abc123`" in text and "`deadbeef`" in text
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == params
    # Deterministic: the same inputs give the same bytes (no timestamps, seeded intervals).
    assert report.render_report(study(), figures, params, "abc123", "deadbeef", report_dir) == text


def test_write_report_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.md"
    assert report.write_report(path, "# hello\n") == path
    assert path.read_text() == "# hello\n"
    report.write_report(path, "# again\n")
    assert path.read_text() == "# again\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.md"]


# ------------------------------------------------------------ the committed result

RESULTS = Path(__file__).resolve().parent.parent / "reports/results"
#: What each committed result's report must say (its censoring and its floor).
RESULT_PHRASES: dict[str, tuple[str, ...]] = {
    "lenet-5trials-10k": (
        "17 of 230 runs are censored",
        "down to at least 3.6% (the sparsest round run)",
    ),
    "lenet-5trials-50k": (
        "No run is censored",
        "down to at least 3.6% (the sparsest round run)",
    ),
    "lenet-5trials-50k-3draws": (
        "No run is censored",
        "Runs per (condition, round): ticket 5; reinit 15; random 5.",
        "ticket − reinit = +0.12 pp (95% interval +0.03 to +0.23, 5 trials)",
    ),
    "lenet-fashion-5trials-10k": (
        "# Lottery Ticket Hypothesis: LeNet-300-100 on Fashion-MNIST",
        "30 of 230 runs are censored",
        "down to 5.6%: round 13 has 88.81%",
    ),
}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "LeNet-300-100 on MNIST"),  # params that predate model and data.dataset
        ({"data": {"dataset": "fashion-mnist"}}, "LeNet-300-100 on Fashion-MNIST"),
        ({"model": {"network": "mlp", "hidden": [64, 32]}}, "MLP-64-32 on MNIST"),
        (
            {"model": {"network": "conv6", "hidden": []}, "data": {"dataset": "cifar10"}},
            "Conv-6 on CIFAR-10",
        ),
    ],
)
def test_the_title_names_the_network_and_the_dataset(params: dict[str, Any], expected: str) -> None:
    assert report.title(params) == f"Lottery Ticket Hypothesis: {expected}"


def test_every_committed_result_is_listed() -> None:
    assert sorted(p.name for p in RESULTS.iterdir() if p.is_dir()) == sorted(RESULT_PHRASES)


@pytest.mark.parametrize("name", sorted(RESULT_PHRASES))
def test_committed_result_is_regenerated_from_its_metrics(tmp_path: Path, name: str) -> None:
    """The committed report, summary.json and plots are exactly what its metrics give."""
    result = RESULTS / name
    copy = tmp_path / "result"
    shutil.copytree(result, copy)
    report.regenerate(copy)
    assert (copy / "report.md").read_text() == (result / "report.md").read_text()
    for name_ in ("summary.json", report.STATISTICS_FILE):
        assert json.loads((copy / name_).read_text()) == json.loads((result / name_).read_text())
    for table in sorted((result / "plots").glob("*.json")):
        assert json.loads((copy / "plots" / table.name).read_text()) == json.loads(
            table.read_text()
        )
    text = (copy / "report.md").read_text()
    for phrase in RESULT_PHRASES[name]:
        assert phrase in text
