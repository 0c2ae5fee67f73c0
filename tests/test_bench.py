"""`lottery bench --quick` runs end to end and writes a consistent JSON report."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "tmp.json"
    script = Path(sys.executable).parent / "lottery"  # the installed console script
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "lottery.cli"]
    proc = subprocess.run(
        [*cmd, "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result, proc.stdout


def test_every_figure_is_positive(report: tuple[dict[str, Any], str]) -> None:
    result, _ = report
    assert result["quick"] is True
    expected = {f"engine_k{k}_{d}" for k in (10, 5, 1) for d in ("d100", "d20")} | {
        "keras_masked_d100",
        "keras_masked_d20",
        "keras_plain",
    }
    assert set(result["figures"]) == expected
    for key, fig in result["figures"].items():
        assert fig["net_it_per_s"] > 0, key
        assert len(fig["samples_net_it_per_s"]) == result["config"]["repeats"]
        assert all(s > 0 for s in fig["samples_net_it_per_s"]), key
    for part in ("startup_s", "imports_s", "data_load_s", "first_chunk_s", "chunk_s", "eval_s"):
        assert result["startup"][part] > 0, part
    for part in ("compile_train_s", "compile_eval_s", "interpreter_s"):
        assert result["startup"][part] >= 0, part
    for name, e in result["evaluation"].items():
        assert e["with_eval_s"] > 0 and e["without_eval_s"] > 0, name
        assert 0 <= e["eval_share"] < 1, name
    assert result["paper_estimate"]["total_s"] > 0


def test_ratios_are_consistent_with_the_figures(report: tuple[dict[str, Any], str]) -> None:
    result, stdout = report
    rates = {k: f["net_it_per_s"] for k, f in result["figures"].items()}
    names = set(result["ratios"])
    for d in ("d100", "d20"):
        assert {
            f"a_k10_over_c_{d}",
            f"a_k5_over_c_{d}",
            f"a_k10_over_d_{d}",
            f"b_over_c_{d}",
        } <= names
    for name, r in result["ratios"].items():
        assert r["value"] > 0
        assert math.isclose(r["value"], rates[r["numerator"]] / rates[r["denominator"]]), name
        assert name in stdout
    c = result["ratios"]["a_k10_over_c_d100"]
    assert (c["numerator"], c["denominator"]) == ("engine_k10_d100", "keras_masked_d100")
    b = result["ratios"]["b_over_c_d20"]
    assert (b["numerator"], b["denominator"]) == ("engine_k1_d20", "keras_masked_d20")


def test_targets_are_reported_pass_or_fail(report: tuple[dict[str, Any], str]) -> None:
    result, stdout = report
    targets = result["targets"]
    assert any(t["name"].startswith("(a)/(c)") for t in targets)
    assert any(t["name"].startswith("evaluation share") for t in targets)
    assert any(t["name"].startswith("stage startup") for t in targets)
    for t in targets:
        ok = (
            t["value"] >= t["threshold"] if t["direction"] == ">=" else t["value"] <= t["threshold"]
        )
        assert t["pass"] is ok
        assert f"{'PASS' if ok else 'FAIL'}  {t['name']}" in stdout


def test_paper_estimate_prices_the_paper_preset() -> None:
    """The estimate's plan is the preset's (trials, iterations, rounds, reinit repeats)."""
    from lottery.bench import PAPER
    from lottery.params import load_params

    p = load_params(ROOT / "presets" / "paper.yaml")
    assert {
        "trials": p.study.trials,
        "iterations": p.train.iterations,
        "rounds": p.study.rounds,
        "reinit_repeats": p.controls.reinit_repeats,
    } == PAPER
