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
        assert e["train_s"] > 0 and e["eval_s"] > 0, name
        assert 0 < e["eval_share"] < 1, name
        assert len(e["samples_eval_share"]) == result["config"]["repeats"]
        assert min(e["samples_eval_share"]) <= e["eval_share"] <= max(e["samples_eval_share"])
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
    compute = result["compute"]
    total = compute["flops_per_net_iteration"]["total"]
    for key, gflops in compute["gflops_per_s"].items():
        assert math.isclose(gflops, rates[key] * total / 1e9), key
    assert "engine_k10_d100" in compute["gflops_per_s"] and "sustained:" in stdout
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


def test_flops_per_net_iteration_counts_lenet_by_hand() -> None:
    # LeNet-300-100: 784*300 + 300*100 + 100*10 = 266,200 multiply-adds per example.
    from lottery.bench import flops_per_net_iteration

    f = flops_per_net_iteration(batch_size=60, n_eval=15_000, eval_every=100)
    assert f["forward"] == 2 * 60 * 266_200
    # kernel gradients (= forward) + activation gradients of fc2 and out (not of the input)
    assert f["backward"] == 2 * 60 * 266_200 + 2 * 60 * (300 * 100 + 100 * 10)
    assert f["evaluation"] == 2 * 15_000 * 266_200 / 100
    assert f["total"] == f["forward"] + f["backward"] + f["evaluation"]
    assert 0.53 < f["evaluation"] / f["total"] < 0.55  # why evaluation can't be <= 25% of time
