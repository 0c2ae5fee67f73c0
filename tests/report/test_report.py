"""The report: sentences and table cells computed from hand-built metrics with known answers.

With 3 trials the 95% Student-t interval of a mean is mean ± t(0.975, 2) · s / √3 =
mean ± 2.4841 · s, so the intervals below are known by hand: values 0.1 pp apart (s = 0.1)
give ± 0.25, values 100 iterations apart ± 248. Censoring uses a test window of 200
iterations (`WINDOW`) unless a test says otherwise.
"""

from __future__ import annotations

import errno
import json
import random
import resource
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from lottery.analysis import inference, results, statistics
from lottery.report import dvc_tables, regenerate, tables
from lottery.report import text as report
from lottery.report.claims import summary_claims

HORIZON = 10_000
WINDOW = results.CensoringWindow(200, "a window of 200 iterations, for the tests")


def metrics(
    condition: str,
    rnd: int,
    pct: float,
    es: list[int],
    acc: list[float],
    val: list[float] | None = None,
    reasons: list[str] | None = None,
    stops: list[int] | None = None,
) -> dict[str, Any]:
    """One run per trial: early stop `es`, test accuracy `acc` (accuracy when training
    stopped = acc - 0.001), validation accuracy `val` (default: acc), stopped at `stops`
    (default: the horizon) for `reasons` (default: "horizon")."""
    val = acc if val is None else val
    reasons = reasons or ["horizon"] * len(es)
    stops = stops or [HORIZON] * len(es)
    runs = {
        f"t{i}": {
            "trial": i,
            "repeat": 0,
            "percent_remaining": pct,
            "early_stop_iteration": e,
            "val_loss_at_early_stop": 0.06,
            "val_accuracy_at_early_stop": v,
            "test_accuracy_at_early_stop": a,
            "stop_iteration": stop,
            "stop_reason": why,
            "test_accuracy_at_stop": a - 0.001,
            "val_loss_at_stop": 0.07,
        }
        for i, (e, a, v, why, stop) in enumerate(zip(es, acc, val, reasons, stops, strict=True))
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
    ticket r3:  es 900/1000/1100, test 97.9/98.2/98.5: -0.1..+0.5 vs dense (s = 0.3)
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


def summary(data: Any, **kw: Any) -> inference.Summary:
    return inference.compute_summary(data, window=kw.pop("window", WINDOW), **kw)


def claims(data: Any, **kw: Any) -> list[str]:
    return summary_claims(summary(data, **kw))


def table(data: Any, window: results.CensoringWindow = WINDOW) -> list[str]:
    runs = results.censor(results.runs_frame(data), window)
    return tables.markdown_table(inference.cells(runs)).strip().splitlines()


# --------------------------------------------------------------------------- table


def test_table_rows_order_and_cells() -> None:
    shuffled = study()
    random.Random(0).shuffle(shuffled)
    lines = table(shuffled)
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
        "| ticket, round 1 | 80.0 | 700 (600–800) [452, 948] | 98.40 (98.30–98.50) "
        "[98.15, 98.65] | 98.30 (98.20–98.40) [98.05, 98.55] |"
    )


def test_censored_cell_is_a_lower_bound_with_its_count() -> None:
    body = table(study())[2:]
    assert body[5] == (
        "| reinit control, round 3 | 51.2 | ≥ 9633 (9000–10000) [8265, 11001], 2/3 censored "
        "| 98.10 (98.00–98.20) [97.85, 98.35] * | 98.00 (97.90–98.10) [97.75, 98.25] * |"
    )
    assert "≥" not in body[4] and "*" not in body[4]


def test_censoring_sentence() -> None:
    c = claims(study())
    assert c[0] == (
        "2 of 18 runs are censored: they stopped less than 200 iterations (the censoring "
        "window W) after their minimum validation loss (reinit control round 3 (2/3)). Their "
        "early-stop iterations are lower bounds and their accuracies may be understated."
    )
    assert (
        "The reinit control's mean early-stop iteration goes from 1300 at 80.0% (round 1) to "
        "≥ 9633 at 51.2% (round 3; 2/3 runs censored), and its mean test accuracy at early "
        "stop from 98.10% to 98.10%."
    ) in c


def test_the_default_window_is_the_patience_evidences() -> None:
    """By default a run is censored when it stopped less than W (4,600 in the committed
    evidence) after its minimum: reinit round 3's run at 9000 of 10,000 too."""
    w = results.default_window()
    assert w.iterations is not None and 1000 < w.iterations < HORIZON - 1000
    s = inference.compute_summary(study())
    assert s.window == w and s.n_censored == 3
    assert summary_claims(s)[0].startswith(
        f"3 of 18 runs are censored: they stopped less than {w.iterations:,} iterations"
    )
    # Without evidence the narrowest rule: the last two evaluations of a run at its horizon.
    none = results.CensoringWindow(None, "no patience evidence was found")
    s = summary(study(), window=none)
    assert s.n_censored == 2
    assert (
        "with the minimum validation loss in the last two evaluations"
        in claims(study(), window=none)[0]
    )


def test_consecutive_censored_rounds_share_an_entry() -> None:
    m = [metrics("ticket", 0, 100.0, [1000] * 3, [0.98] * 3)]
    m += [metrics("random", r, 80.0 / r, [9950] * 3, [0.97] * 3) for r in (1, 2, 3)]
    m += [metrics("random", 5, 20.0, [9950, 9950, 100], [0.97] * 3)]
    assert "random-prune control rounds 1–3 (3/3 each), 5 (2/3))" in claims(m)[0]


def test_sentences_using_a_censored_ticket_cell_say_so() -> None:
    m = study()
    m[3]["runs"]["t0"]["early_stop_iteration"] = 9900  # ticket round 3, trial 0
    c = claims(m)
    note = " The ticket of round 3 has 1/3 runs censored: its accuracy may be understated."
    floor = next(x for x in c if x.startswith("Tickets match"))
    gap = next(x for x in c if x.startswith("Round 3 "))
    assert "Sparser: round 3 is undetermined." in floor and not floor.endswith(note)
    assert gap.endswith("its accuracy may be understated)." + note)
    assert c[0].startswith("3 of 18 runs are censored")
    assert "ticket rounds" not in c[0] and "ticket round 3 (1/3)" in c[0]


def test_a_patience_stop_at_least_the_window_after_the_minimum_is_not_censored() -> None:
    m = study()
    m[5] = metrics(
        "reinit",
        3,
        51.2,
        [9700, 9800, 9000],
        [0.98, 0.981, 0.982],
        reasons=["patience"] * 3,
        stops=[9_900, 9_950, 9_200],  # 200, 150, 200 iterations after the minimum
    )
    s = summary(m)
    assert [c.n_censored for c in s.censored] == [1]  # 150 < 200: stopped too soon
    m[5]["runs"]["t1"]["stop_iteration"] = 10_000
    assert claims(m)[0] == (
        "No run is censored: every run trained at least 200 iterations (the censoring window "
        "W) past its minimum validation loss."
    )
    assert "≥" not in "\n".join(table(m))


# ------------------------------------------------------------------------- summary


def test_earliest_stop_sentence_with_its_runner_up_and_share() -> None:
    assert claims(study())[1] == (
        "The earliest-stopping ticket is round 2 (64.0% of weights remaining): mean early-stop "
        "iteration 500 vs 1000 for the dense network, a factor of 2.0 (dense ÷ ticket); "
        "dense − ticket = +500 iterations (95% interval +252 to +748, 3 trials): the ticket "
        "stops earlier. Runner-up: round 1 (700, 200 iterations later); 100% of 10,000 "
        "bootstrap resamples of the trials pick round 2 (the dense − ticket interval does not "
        "allow for picking the lowest of 3 rounds)."
    )


def test_best_ticket_is_picked_on_validation_not_test() -> None:
    s = summary(study(), validation_size=5000)
    assert s.best is not None and s.best.ticket.round == 1 and s.best.test_best.round == 2
    assert s.best.pick.runner_up is not None and s.best.pick.runner_up.round == 2
    assert s.best.pick.margin == pytest.approx(0.005) and s.best.pick.clear
    assert summary_claims(s)[2] == (
        "Chosen by mean validation accuracy at early stop, the best ticket is round 1 (80.0% "
        "of weights remaining), with 99.00% on validation; runner-up: round 2, 75 validation "
        "examples of 15,000 (3 runs × 5,000) behind; 100% of 10,000 bootstrap resamples of "
        "the trials pick round 1. Its mean test accuracy at early stop is 98.40% vs 98.00% "
        "for the dense network; ticket − dense = +0.40 pp (95% interval +0.15 to +0.65, 3 "
        "trials): the ticket is more accurate. Round 2 has the highest mean test accuracy "
        "(98.70%), but a round picked on test accuracy would overstate the gain."
    )
    # Without the validation size, the margin is in pp of validation accuracy.
    assert "runner-up: round 2, 0.500 pp of validation accuracy behind" in claims(study())[2]


def test_a_pick_most_resamples_do_not_share_is_no_clear_best() -> None:
    """Rounds 1 and 2 swap places across the trials: round 1 has the higher mean by 2
    validation examples of 25,000, but far fewer than 80% of the resamples agree."""
    m = study()
    val1 = [0.9900, 0.9880, 0.9900, 0.9880, 0.9900]
    val2 = [0.9880, 0.9900, 0.9880, 0.9902, 0.9894]  # 2 examples of 25,000 fewer in all
    m[1] = metrics("ticket", 1, 80.0, [600] * 5, [0.983] * 5, val1)
    m[2] = metrics("ticket", 2, 64.0, [500] * 5, [0.986] * 5, val2)
    m[3] = metrics("ticket", 3, 51.2, [900] * 5, [0.980] * 5, [0.980] * 5)
    m[0] = metrics("ticket", 0, 100.0, [1000] * 5, [0.980] * 5)
    s = summary(m[:4], validation_size=5000)
    b = s.best
    assert b is not None and b.ticket.round == 1 and not b.pick.clear
    share = b.pick.shares
    assert share is not None and 0.2 < share[1] < 0.8 and share[1] + share[2] == pytest.approx(1)
    text = summary_claims(s)[2]
    assert "runner-up: round 2, 2 validation examples of 25,000 (5 runs × 5,000) behind" in text
    assert (
        f"{round(100 * share[1])}% of 10,000 bootstrap resamples of the trials pick round 1: "
        in text
    )
    assert "no clear best among rounds 1 (" in text and "), 2 (" in text


def test_floor_reads_the_match_verdicts() -> None:
    s = summary(study())
    assert [m.verdict for m in s.matches] == ["matches", "matches", "undetermined"]
    assert s.floor is not None and s.floor.ticket.round == 2 and not s.floor.is_sparsest_run
    assert not s.floor.exact
    assert summary_claims(s)[3] == (
        "Tickets match dense (ticket − dense test accuracy at early stop, 95% interval above "
        "−0.25 pp, the match margin) down to at least 64.0%: round 2 has 98.70% vs 98.00%, "
        "ticket − dense = +0.70 pp (95% interval +0.45 to +0.95, 3 trials). Sparser: round 3 "
        "is undetermined."
    )
    # A margin of 0.6 pp lets round 3 (interval -0.55 to +0.95) match: the sparsest round.
    s = summary(study(), margin_pp=0.6)
    assert s.floor is not None and s.floor.ticket.round == 3 and s.floor.is_sparsest_run
    assert "down to at least 51.2% (the sparsest round run)" in summary_claims(s)[3]
    with pytest.raises(ValueError):
        summary(study(), margin_pp=-1)


def test_floor_where_the_sparser_rounds_fall_short() -> None:
    m = [*study()[:3], metrics("ticket", 3, 51.2, [900] * 3, [0.970, 0.971, 0.972])]
    s = summary(m)
    assert s.floor is not None and s.floor.ticket.round == 2 and s.floor.exact
    assert s.floor.sparser_rounds == (3,) and s.matches[2].verdict == "falls short"
    floor = next(c for c in summary_claims(s) if c.startswith("Tickets match"))
    assert floor == (
        "Tickets match dense (ticket − dense test accuracy at early stop, 95% interval above "
        "−0.25 pp, the match margin) down to 64.0%: round 2 has 98.70% vs 98.00%, ticket − "
        "dense = +0.70 pp (95% interval +0.45 to +0.95, 3 trials). Sparser: round 3 falls "
        "short."
    )


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.24, 0.3, "matches"),
        (-0.25, 0.3, "undetermined"),  # the printed end on the margin does not clear it
        (-0.6, -0.26, "falls short"),
        (-0.6, -0.25, "undetermined"),
        (-0.6, 0.3, "undetermined"),
    ],
)
def test_match_verdict(low: float, high: float, expected: str) -> None:
    d = results.Difference((low + high) / 2, low, high, 5)
    assert inference.match_verdict(d, 0.25) == expected
    assert inference.match_verdict(results.Difference(0.1, None, None, 2), 0.25) is None


def test_no_ticket_matches_dense() -> None:
    m = [
        metrics("ticket", 0, 100.0, [1000] * 3, [0.98] * 3),
        metrics("ticket", 1, 80.0, [1500] * 3, [0.975, 0.976, 0.977]),
        metrics("ticket", 2, 64.0, [1500] * 3, [0.970, 0.971, 0.972]),
    ]
    s = summary(m)
    assert s.floor is None
    c = summary_claims(s)
    assert (
        "No pruned ticket matches dense (ticket − dense test accuracy at early stop, 95% "
        "interval above −0.25 pp, the match margin): round 1 is undetermined; round 2 falls "
        "short."
    ) in c
    assert (
        c[1]
        .split(". Runner-up")[0]
        .endswith(
            "dense − ticket = -500 iterations (95% interval -500 to -500, 3 trials): the ticket "
            "stops later"
        )
    )
    assert c[-1].startswith("No control runs")


def test_gaps_are_holm_adjusted_per_control() -> None:
    """Round 1's gap alone would be real (p = 0.02 < 0.05); Holm over the family of 3
    rounds makes it 0.06, and the report says no clear difference."""
    m = study()[:2]
    m += [metrics("ticket", r, 80.0 / r, [700] * 3, [0.983, 0.984, 0.985]) for r in (2, 3)]
    diffs = {1: [0.3, 0.4, 0.5], 2: [0.0, 0.1, -0.1], 3: [0.05, -0.05, 0.1]}
    ticket = [0.983, 0.984, 0.985]
    m += [
        metrics(
            "reinit", r, 80.0 / r, [900] * 3, [t - d / 100 for t, d in zip(ticket, ds, strict=True)]
        )
        for r, ds in diffs.items()
    ]
    s = summary(m)
    g1 = next(g for g in s.gaps if g.round == 1)
    raw = statistics.t_pvalue(diffs[1])
    assert raw is not None and raw < 0.05 and g1.difference.ci_low is not None
    assert g1.difference.ci_low > 0  # unadjusted, the interval excludes 0
    ps = [statistics.t_pvalue(d) for d in diffs.values()]
    assert g1.p_holm is not None and g1.p_holm > 0.05
    assert g1.p_holm == pytest.approx(statistics.holm(ps)[0])
    assert g1.family == 3 and inference.gap_sign(g1) == 0
    text = next(c for c in summary_claims(s) if c.startswith("Round 1 "))
    assert f"; Holm p {g1.p_holm:.3f} over 3 rounds): no clear difference." in text


def test_interval_that_excludes_zero_and_one_that_straddles_it() -> None:
    c = claims(study())
    assert (
        "Round 1 (80.0% remaining), test accuracy at early stop: ticket − reinit = +0.30 pp "
        "(95% interval +0.30 to +0.30, 3 trials; Holm p < 0.001 over 2 rounds): the ticket "
        "is more accurate."
    ) in c
    assert (
        "Round 3 (51.2% remaining), test accuracy at early stop: ticket − reinit = +0.10 pp "
        "(95% interval -0.40 to +0.60, 3 trials; Holm p 0.478 over 2 rounds): no clear "
        "difference (reinit: 2/3 runs censored, its accuracy may be understated)."
    ) in c


def test_an_interval_whose_printed_end_is_zero_is_no_clear_difference() -> None:
    m = [
        metrics("ticket", 1, 80.0, [500] * 3, [0.98, 0.981, 0.982]),
        # ticket − reinit = 0.15, 0.25, 0.35 pp: mean 0.25 ± 2.4841 · 0.1, p = 0.049
        metrics("reinit", 1, 80.0, [500] * 3, [0.9785] * 3),
    ]
    s = summary(m)
    g = s.gaps[0]
    assert g.p_holm is not None and g.p_holm < 0.05  # real by the test ...
    assert g.difference.ci_low is not None and round(g.difference.ci_low, 2) == 0.0
    text = "\n".join(summary_claims(s))  # ... but not as printed
    assert (
        "ticket − reinit = +0.25 pp (95% interval +0.00 to +0.50, 3 trials; Holm p 0.049 over "
        "1 round): no clear difference."
    ) in text


def one_and_two_trials() -> list[dict[str, Any]]:
    return [
        metrics("ticket", 0, 100.0, [900, 1100], [0.980, 0.982]),
        metrics("ticket", 1, 80.0, [700, 900], [0.985, 0.985]),
        metrics("reinit", 1, 80.0, [1200], [0.98]),
    ]


def test_one_and_two_trials_give_no_interval() -> None:
    m = one_and_two_trials()
    body = table(m)[2:]
    assert body[0] == (
        "| dense (round 0) | 100.0 | 1000 (900–1100) [no interval: 2 trials] "
        "| 98.10 (98.00–98.20) [no interval: 2 trials] "
        "| 98.00 (97.90–98.10) [no interval: 2 trials] |"
    )
    assert body[2] == "| reinit control, round 1 | 80.0 | 1200 | 98.00 | 97.90 |"
    c = claims(m)
    assert c[1].endswith("dense − ticket = +200 iterations (2 trials: no interval possible).")
    assert c[2].endswith("ticket − dense = +0.40 pp (2 trials: no interval possible).")
    assert c[3] == "No match verdict is possible: with fewer than 3 trials there is no interval."
    assert c[-1] == (
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
    s = summary(m)
    assert s.earliest is not None and s.earliest.ticket.round == 2
    assert s.earliest.tied_rounds == (1,) and s.earliest.pick.margin == 0.0
    assert s.best is not None and s.best.ticket.round == 2 and s.best.tied_rounds == (1,)
    assert s.best.pick.shares is None  # one trial: no resampling
    assert sum("tied with round 1" in c for c in summary_claims(s)) == 2


def test_only_round_zero_and_nothing() -> None:
    m = [metrics("ticket", 0, 100.0, [1000, 1200], [0.98, 0.982])]
    s = summary(m)
    assert s.tickets == () and s.earliest is None and s.best is None and s.gaps == ()
    assert summary_claims(s)[1] == (
        "Only the dense network (round 0) has been trained: mean early-stop iteration 1100, "
        "mean test accuracy at early stop 98.10%; there are no pruned tickets to compare."
    )
    assert claims([]) == ["No ticket results were found, so there is nothing to summarise."]


def test_missing_dense_round() -> None:
    m = [metrics("ticket", 1, 80.0, [500], [0.98]), metrics("reinit", 1, 80.0, [600], [0.97])]
    s = summary(m)
    assert s.dense is None and s.earliest is not None and s.earliest.vs_dense is None
    assert s.matches == () and s.floor is None
    text = "\n".join(summary_claims(s))
    assert "dense network (round 0) is missing" in text
    assert "ticket − reinit = +1.00 pp (1 trial: no interval possible)" in text


def test_the_margin_comes_from_the_params() -> None:
    assert report.match_margin({}) == inference.DEFAULT_MARGIN_PP
    assert report.match_margin({"report": {"match_margin_pp": 0.6}}) == 0.6
    assert report.validation_size({"data": {"validation_size": 5000}}) == 5000
    assert report.validation_size({}) is None
    runs = results.runs_frame(study())
    s = report.summary_for(runs, {"report": {"match_margin_pp": 0.6}}, WINDOW)
    assert s.margin_pp == 0.6 and s.floor is not None and s.floor.ticket.round == 3


# ---------------------------------------------------------------------- summary.json


def test_summary_json_carries_the_same_facts() -> None:
    s = summary(study())
    all_cells = inference.cells(results.censor(results.runs_frame(study()), WINDOW))
    out = dvc_tables.summary_json(s)
    assert out["runs"] == 18 and out["censored_runs"] == 2 and out["trials"] == 3
    assert out["best_ticket_round"] == 1
    assert out["best_ticket_gain_pp"]["mean"] == pytest.approx(0.4)
    assert out["best_ticket_gain_pp"]["ci_low"] == pytest.approx(0.4 - 0.248414, abs=1e-5)
    assert out["sparsest_matching_round"] == 2
    assert out["earliest_stop_dense_minus_ticket"]["ci_high"] == pytest.approx(748.41, abs=0.01)
    # One unit: accuracies in %, as in the report (the cells hold fractions).
    dense = next(c for c in all_cells if c.condition == "ticket" and c.round == 0)
    assert out["dense_test_accuracy_pct"] == pytest.approx(100 * dense.accuracy.mean)
    # Compact for `dvc exp show`: headline facts only, nothing per (condition, round).
    flat = [k for k, v in out.items() for _ in (v if isinstance(v, dict) else [v])]
    assert len(flat) <= 22, flat
    assert not any("_r0" in k or "by_round" in k for k in out), list(out)
    stats = dvc_tables.statistics_json(s, all_cells)
    cell = stats["cells"]["reinit"]["r03"]
    r03 = next(c for c in all_cells if c.condition == "reinit" and c.round == 3)
    assert cell["test_accuracy_at_early_stop"]["mean"] == pytest.approx(100 * r03.accuracy.mean)
    assert cell["n_censored"] == 2 and cell["early_stop_iteration"]["min"] == 9000
    gap = stats["ticket_minus_control_pp"]["reinit"]["r03"]
    assert gap["ci_low"] == pytest.approx(0.1 - 0.496828, abs=1e-5)
    assert gap["p_holm"] == pytest.approx(0.478, abs=0.001) and gap["family"] == 2
    assert gap["sign"] == 0 and stats["ticket_minus_control_pp"]["reinit"]["r01"]["sign"] == 1
    assert stats["match_vs_dense_pp"]["r03"]["verdict"] == "undetermined"
    assert stats["picks"]["best_ticket"]["runner_up_round"] == 2
    assert stats["picks"]["earliest_stop"]["share"] == 1.0
    assert stats["method"]["censoring_window"] == 200
    assert stats["method"]["match_margin_pp"] == inference.DEFAULT_MARGIN_PP
    json.dumps(out)  # plain JSON
    json.dumps(stats)
    two = summary(one_and_two_trials())
    assert dvc_tables.summary_json(two)["best_ticket_gain_pp"] == {
        "mean": pytest.approx(0.4),
        "ci_low": None,
        "ci_high": None,
    }


# -------------------------------------------------------------------------- report


def test_render_report(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    figures = {
        "accuracy_vs_remaining": report_dir / "figures" / "accuracy_vs_remaining.png",
        "masks/r03_fc1_mask": Path("figures/masks/r03_fc1_mask.png"),
    }
    params = {"study": {"rounds": 3, "trials": 3}, "train": {"lr": 0.0012, "batch": 60}}
    text = report.render_report(study(), figures, params, "abc123", "deadbeef", report_dir, WINDOW)
    assert text.startswith("# ")
    for claim in claims(study()):
        assert f"- {claim}" in text
    assert "\n".join(table(study())) in text
    assert "](figures/accuracy_vs_remaining.png)" in text  # absolute -> relative
    assert "](figures/masks/r03_fc1_mask.png)" in text  # relative kept as is
    assert "Round 3: first-layer mask" in text
    assert "Runs per (condition, round): ticket 3; reinit 3." in text
    assert "`abc123`" in text and "`deadbeef`" in text
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == params
    # Deterministic: the same inputs give the same bytes (no timestamps, seeded picks).
    again = report.render_report(study(), figures, params, "abc123", "deadbeef", report_dir, WINDOW)
    assert again == text


def test_the_preamble_states_the_method_its_coverage_the_margin_and_the_window() -> None:
    text = " ".join(report.preamble(summary(study(), margin_pp=0.3)).split())
    cov = {d: statistics.coverage("t", d, 5) for d in ("normal", "lognormal", "t3")}
    assert "Intervals are Student-t. In 20,000 simulated data sets of 5 values" in text
    assert (
        f"{cov['normal']:.1%} of the time for normal data, {cov['lognormal']:.1%} for skewed "
        f"(lognormal) and {cov['t3']:.1%} for heavy-tailed"
    ) in text
    assert abs(cov["normal"] - 0.95) < 0.005  # the stated coverage is the real one
    assert "interval lies above −0.30 pp (the match margin)" in text
    assert "Holm-adjusted p is below 0.05" in text
    assert "stopped less than W = 200 iterations after its minimum validation loss" in text
    assert "W is a window of 200 iterations, for the tests." in text
    assert "all three over trial means" in text


@pytest.mark.parametrize(
    ("prune", "patience", "cut", "stopped"),
    [
        (
            {"point": "horizon"},
            10_000,
            "at the horizon (50,000 iterations, the paper's point)",
            "a control (reinit, random prune) stopped training 10,000 iterations after",
        ),
        (
            {"point": "horizon"},
            0,
            "at the horizon (50,000 iterations, the paper's point)",
            "Every network trained all 50,000 iterations (patience 0).",
        ),
        (
            {"point": "early_stop"},
            2_000,
            "at its minimum validation loss (`prune.point: early_stop`",
            "every network stopped training 2,000 iterations after",
        ),
        (
            {},
            10_000,
            "where it stopped training (this study predates `prune.point`",
            "every network stopped training 10,000 iterations after",
        ),
        (
            {},
            0,
            "the paper's point; this study predates `prune.point`",
            "Every network trained all 50,000 iterations (patience 0).",
        ),
    ],
)
def test_the_report_opens_with_where_masks_were_cut_and_networks_stopped(
    prune: dict[str, Any], patience: int, cut: str, stopped: str
) -> None:
    params = {"train": {"iterations": 50_000, "patience": patience}, "prune": prune}
    text = " ".join(report.protocol(params).split())
    assert cut in text and stopped in text, text
    rendered = report.render_report(study(), {}, params, "abc", "def", ".", WINDOW)
    assert rendered.split("\n\n")[1].replace("\n", " ") == text


def test_write_report_is_atomic(tmp_path: Path) -> None:
    """A write cut off midway (the file-size limit stops it after 4 KiB of 100 KiB, as a
    full disk would) leaves the old report whole and no temporary file; the error names
    the report."""
    path = tmp_path / "out" / "report.md"
    assert report.write_report(path, "# old\n") == path
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old_limit[1]))
    try:
        with pytest.raises(OSError) as cut:
            report.write_report(path, "x" * 100_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert path.read_text() == "# old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.md"]
    assert cut.value.errno == errno.EFBIG and cut.value.filename == str(path)
    report.write_report(path, "# new\n")  # and a write that completes replaces it
    assert path.read_text() == "# new\n"


# ------------------------------------------------------------ the committed result

RESULTS = Path(__file__).resolve().parents[2] / "reports/results"
#: What each committed result's report must say (its censoring and its floor).
RESULT_PHRASES: dict[str, tuple[str, ...]] = {
    "lenet-5trials-10k": (
        "112 of 230 runs are censored: they stopped less than 4,600 iterations",
        "down to at least 3.6% (the sparsest round run)",
    ),
    "lenet-5trials-50k": (
        "No run is censored",
        "down to at least 3.6% (the sparsest round run)",
        "no clear best among rounds 9 (49%), 7 (32%), 8 (13%)",
    ),
    "lenet-5trials-50k-3draws": (
        "No run is censored",
        "Runs per (condition, round): ticket 5; reinit 15; random 5.",
        "ticket − reinit = +0.12 pp (95% interval -0.04 to +0.27, 5 trials; Holm p 0.100 over "
        "15 rounds): no clear difference",
    ),
    "lenet-5trials-50k-horizon": (
        "Each round's mask was cut from a ticket's weights at the horizon (50,000 iterations, "
        "the paper's point)",
        "Runs per (condition, round): ticket 5; reinit 15; random 5.",
        "ticket − dense = +0.08 pp (95% interval -0.10 to +0.25, 5 trials)",
        "ticket − reinit = +0.99 pp (95% interval +0.91 to +1.06, 5 trials; Holm p < 0.001 "
        "over 15 rounds): the ticket is more accurate",
    ),
    "lenet-fashion-5trials-10k": (
        "# Lottery Ticket Hypothesis: LeNet-300-100 on Fashion-MNIST",
        "178 of 230 runs are censored",
        "down to at least 7.0%: round 12 has 89.11%",
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


def test_every_committed_result_has_a_readme_the_index_links() -> None:
    index = (RESULTS / "README.md").read_text()
    for name in RESULT_PHRASES:
        assert (RESULTS / name / "README.md").is_file(), name
        assert f"| `{name}` |" in index and f"[README]({name}/README.md)" in index, name


@pytest.mark.parametrize("name", sorted(RESULT_PHRASES))
def test_committed_result_is_regenerated_from_its_metrics(tmp_path: Path, name: str) -> None:
    """The committed report, summary.json, statistics.json and plots tables are, byte for
    byte, what its metrics give. (The redrawn figures are left out: a PNG's bytes may
    differ with the platform's matplotlib build.)"""
    result = RESULTS / name
    copy = tmp_path / "result"
    shutil.copytree(result, copy)
    regenerate.regenerate(copy)
    written = ["report.md", "summary.json", dvc_tables.STATISTICS_FILE]
    written += [f"plots/{t.name}" for t in sorted((result / "plots").glob("accuracy_*.json"))]
    assert len(written) == 6
    for file in written:
        assert (copy / file).read_bytes() == (result / file).read_bytes(), file
    regenerated = " ".join((copy / "report.md").read_text().split())  # the preamble is wrapped
    for phrase in RESULT_PHRASES[name]:
        assert phrase in regenerated


def test_report_module_help_and_a_bad_directory(tmp_path: Path) -> None:
    """`lottery report --help` prints usage (no traceback, no
    `--help/` folder); a directory that is not a kept study is one `error:` line."""
    import subprocess
    import sys

    help_ = subprocess.run(
        [str(Path(sys.executable).with_name("lottery")), "report", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert help_.returncode == 0 and "usage: lottery report" in help_.stdout
    assert not (tmp_path / "--help").exists()
    bad = subprocess.run(
        [str(Path(sys.executable).with_name("lottery")), "report", "nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error: nowhere: not a kept study"), bad.stderr
    assert "Traceback" not in bad.stderr
