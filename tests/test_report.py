"""The report: numbers and sentences computed from crafted metrics with known answers."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from lottery import report


def metrics(
    condition: str, rnd: int, pct: float, es: list[float], acc: list[float]
) -> dict[str, Any]:
    """A metrics dict with one run per (es, acc) pair; final accuracy = acc - 0.001."""
    runs = {
        (f"t{i}" if condition != "reinit" else f"t0r{i}"): {
            "trial": 0 if condition == "reinit" else i,
            "repeat": i if condition == "reinit" else 0,
            "percent_remaining": pct,
            "early_stop_iteration": e,
            "test_accuracy_at_early_stop": a,
            "final_test_accuracy": a - 0.001,
            "val_loss_at_early_stop": 0.06,
            "val_accuracy_at_early_stop": a,
        }
        for i, (e, a) in enumerate(zip(es, acc, strict=True))
    }
    return {"round": rnd, "condition": condition, "percent_remaining": pct, "runs": runs}


def study() -> list[dict[str, Any]]:
    """Dense: es 1000, acc 98.10%. Tickets: r1 700/98.50, r2 400/98.30, r3 1000/97.10.

    Reinit (one run): 98.00, 97.50, 96.00; random (one run): 97.90, 97.00, 95.00.
    """
    return [
        metrics("ticket", 0, 100.0, [1000, 1000], [0.980, 0.982]),
        metrics("ticket", 1, 80.0, [800, 600], [0.984, 0.986]),
        metrics("ticket", 2, 64.0, [400, 400], [0.982, 0.984]),
        metrics("ticket", 3, 51.2, [900, 1100], [0.970, 0.972]),
        metrics("reinit", 1, 80.0, [1200], [0.980]),
        metrics("reinit", 2, 64.0, [1300], [0.975]),
        metrics("reinit", 3, 51.2, [1400], [0.960]),
        metrics("random", 1, 80.0, [1200], [0.979]),
        metrics("random", 2, 64.0, [1300], [0.970]),
        metrics("random", 3, 51.2, [1400], [0.950]),
    ]


# --------------------------------------------------------------------------- table


def test_aggregate_table_order_and_values() -> None:
    shuffled = study()
    random.Random(0).shuffle(shuffled)
    rows = report.aggregate_table(shuffled)
    assert [(r["condition"], r["round"]) for r in rows] == [
        ("ticket", 0),
        ("ticket", 1),
        ("ticket", 2),
        ("ticket", 3),
        ("reinit", 1),
        ("reinit", 2),
        ("reinit", 3),
        ("random", 1),
        ("random", 2),
        ("random", 3),
    ]
    assert [r["label"] for r in rows[:5]] == [
        "dense (round 0)",
        "ticket, round 1",
        "ticket, round 2",
        "ticket, round 3",
        "reinit control, round 1",
    ]
    assert rows[-1]["label"] == "random-prune control, round 3"
    r1 = rows[1]
    assert r1["n_runs"] == 2 and r1["percent_remaining"] == 80.0
    assert r1["early_stop_iteration"] == {"mean": 700.0, "min": 600.0, "max": 800.0}
    assert r1["test_accuracy_at_early_stop"]["mean"] == pytest.approx(0.985)
    assert r1["final_test_accuracy"]["max"] == pytest.approx(0.985)


def test_aggregate_table_rejects_duplicates() -> None:
    m = study()
    with pytest.raises(ValueError, match="duplicate"):
        report.aggregate_table([*m, m[1]])


def test_markdown_table_cells() -> None:
    text = report.markdown_table(report.aggregate_table(study()))
    lines = text.strip().splitlines()
    assert lines[0] == (
        "| condition | % weights remaining | early-stop iteration "
        "| test acc. at early stop | final test acc. |"
    )
    body = lines[2:]
    assert len(body) == 10  # one row per (condition, round)
    assert body[0] == (
        "| dense (round 0) | 100.0 | 1000 (1000–1000) | 98.10 (98.00–98.20) | 98.00 (97.90–98.10) |"
    )
    assert body[1].startswith("| ticket, round 1 | 80.0 | 700 (600–800) | 98.50 (98.40–98.60) |")
    # Single-run rows show the value alone, without "(min–max)".
    assert body[4] == "| reinit control, round 1 | 80.0 | 1200 | 98.00 | 97.90 |"
    assert all("(" not in line and "–" not in line for line in body[4:])
    assert all("–" in line for line in body[:4])


def test_percent_remaining_format() -> None:
    assert report.fmt_percent_remaining(100.0) == "100.0"
    assert report.fmt_percent_remaining(3.6) == "3.6"
    assert report.fmt_percent_remaining(0.5903) == "0.59"


# ------------------------------------------------------------------------- summary


def test_summary_numbers_on_known_study() -> None:
    s = report.compute_summary(study())
    assert s.dense is not None and s.dense.early_stop_iteration == 1000
    assert s.dense.test_accuracy == pytest.approx(0.981)
    assert [t.round for t in s.tickets] == [1, 2, 3]

    assert s.earliest is not None
    assert s.earliest.ticket.round == 2 and s.earliest.ticket.percent_remaining == 64.0
    assert s.earliest.factor_vs_dense == pytest.approx(2.5)
    assert s.earliest.tied_rounds == ()

    assert s.best is not None and s.best.ticket.round == 1
    assert s.best.gain_pp == pytest.approx(0.4)

    assert s.sparsest_matching is not None and s.sparsest_matching.round == 2  # 98.30 >= 98.10
    assert s.control_conditions == ("reinit", "random")
    gaps = {g.round: (g.reinit_gap_pp, g.random_gap_pp) for g in s.gaps}
    assert gaps.keys() == {1, 2, 3}
    assert gaps[1] == (pytest.approx(0.5), pytest.approx(0.6))
    assert gaps[2] == (pytest.approx(0.8), pytest.approx(1.3))
    assert gaps[3] == (pytest.approx(1.1), pytest.approx(2.1))


def test_tolerance_changes_the_sparsest_match() -> None:
    # Round 3 is 1.00 pp below dense: it matches with a 1.0 pp tolerance, not with 0.99.
    s = report.compute_summary(study(), tolerance_pp=1.0)
    assert s.sparsest_matching is not None and s.sparsest_matching.round == 3
    s = report.compute_summary(study(), tolerance_pp=0.99)
    assert s.sparsest_matching is not None and s.sparsest_matching.round == 2
    with pytest.raises(ValueError):
        report.compute_summary(study(), tolerance_pp=-1)


def test_summary_sentences_contain_the_numbers() -> None:
    claims = report.summary_claims(study())
    text = "\n".join(claims)
    earliest = next(c for c in claims if c.startswith("The earliest-stopping ticket"))
    assert "round 2 (64.0% of weights remaining)" in earliest
    assert "400 vs 1000" in earliest and "factor of 2.5" in earliest and "earlier than" in earliest
    best = next(c for c in claims if c.startswith("The most accurate ticket"))
    assert "round 1 (80.0%" in best and "98.50%" in best and "98.10%" in best
    assert "+0.40 percentage points" in best
    match = next(c for c in claims if "matches the dense network" in c)
    assert "round 2" in match and "tolerance of 0.00 percentage points" in match
    assert "Round 1 (80.0% remaining)" in text
    assert "ticket − reinit = +0.50 pp" in text and "ticket − random prune = +0.60 pp" in text
    assert "ticket − reinit = +1.10 pp" in text and "ticket − random prune = +2.10 pp" in text
    # Passing a precomputed Summary renders the same sentences.
    assert report.summary_claims(report.compute_summary(study())) == claims


def test_no_ticket_matches_dense_and_all_worse() -> None:
    m = [
        metrics("ticket", 0, 100.0, [1000], [0.98]),
        metrics("ticket", 1, 80.0, [1500], [0.975]),
        metrics("ticket", 2, 64.0, [2000], [0.97]),
    ]
    s = report.compute_summary(m)
    assert s.sparsest_matching is None
    assert s.best is not None and s.best.ticket.round == 1
    assert s.best.gain_pp == pytest.approx(-0.5)
    assert s.earliest is not None and s.earliest.factor_vs_dense == pytest.approx(1000 / 1500)
    claims = report.summary_claims(m)
    text = "\n".join(claims)
    assert "No pruned ticket matches the dense network" in text
    assert "-0.50 percentage points (no pruned ticket reached the dense accuracy)" in text
    assert "factor of 0.7" in text and "later than" in text
    assert "No control runs" in text  # no reinit / random in these metrics
    assert s.gaps == ()


def test_only_round_zero() -> None:
    m = [metrics("ticket", 0, 100.0, [1000, 1200], [0.98, 0.982])]
    s = report.compute_summary(m)
    assert s.tickets == () and s.earliest is None and s.best is None and s.gaps == ()
    claims = report.summary_claims(m)
    assert len(claims) == 1
    assert claims[0].startswith("Only the dense network (round 0)")
    assert "1100" in claims[0] and "98.10%" in claims[0]
    rows = report.aggregate_table(m)
    assert [r["label"] for r in rows] == ["dense (round 0)"]
    assert report.summary_claims([]) == [
        "No ticket results were found, so there is nothing to summarise."
    ]


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
    assert s.sparsest_matching is not None and s.sparsest_matching.round == 3  # equal counts
    claims = report.summary_claims(m)
    assert sum("tied with round 1" in c for c in claims) == 2


def test_zero_gain_is_not_negative_zero() -> None:
    m = [
        metrics("ticket", 0, 100.0, [1000], [0.98]),
        metrics("ticket", 1, 80.0, [1000], [0.98 - 1e-7]),
    ]
    text = "\n".join(report.summary_claims(m))
    assert "+0.00 percentage points" in text and "-0.00" not in text
    assert "factor of 1.0" in text and "stops the same as the dense network" in text
    # 1e-7 below dense is a real (if tiny) loss: with no tolerance it does not match.
    assert "No pruned ticket matches the dense network" in text


def test_missing_dense_round() -> None:
    m = [metrics("ticket", 1, 80.0, [500], [0.98]), metrics("reinit", 1, 80.0, [600], [0.97])]
    s = report.compute_summary(m)
    assert s.dense is None and s.earliest is not None and s.earliest.factor_vs_dense is None
    assert s.best is not None and s.best.gain_pp is None and s.sparsest_matching is None
    text = "\n".join(report.summary_claims(m))
    assert "dense network (round 0) is missing" in text
    assert "ticket − reinit = +1.00 pp" in text and "random prune =" not in text


# -------------------------------------------------------------------------- report


def test_render_report(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    figures = {
        "accuracy_vs_remaining": report_dir / "figures" / "accuracy_vs_remaining.png",
        "masks/r03_fc1_mask": Path("figures/masks/r03_fc1_mask.png"),
    }
    params = {"study": {"rounds": 3, "trials": 2}, "train": {"lr": 0.0012, "batch": 60}}
    text = report.render_report(study(), figures, params, "abc123", "deadbeef", report_dir)

    assert text.startswith("# ")
    for claim in report.summary_claims(study()):
        assert f"- {claim}" in text
    assert report.markdown_table(report.aggregate_table(study())).strip() in text
    assert "](figures/accuracy_vs_remaining.png)" in text  # absolute -> relative
    assert "](figures/masks/r03_fc1_mask.png)" in text  # relative kept as is
    assert "Round 3: first-layer mask" in text
    assert "Runs per (condition, round): ticket 2; reinit 1; random 1." in text
    assert "`abc123`" in text and "`deadbeef`" in text
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == params
    # Deterministic: the same inputs give the same bytes (no timestamps).
    assert report.render_report(study(), figures, params, "abc123", "deadbeef", report_dir) == text


def test_write_report_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.md"
    assert report.write_report(path, "# hello\n") == path
    assert path.read_text() == "# hello\n"
    report.write_report(path, "# again\n")
    assert path.read_text() == "# again\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.md"]
