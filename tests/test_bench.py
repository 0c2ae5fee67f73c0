"""The benchmark in-process on a tiny config: every figure, ratio and target is reported
and consistent, and the paper estimate prices presets/paper.yaml."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from lottery.bench import main as bench
from lottery.core.params import load_params

ROOT = Path(__file__).resolve().parents[1]

#: Real MNIST and the real engine and Keras, on windows of 10 iterations: two repeats
#: (a median and its samples), one stacked K besides K = 1.
TINY = bench.BenchConfig(
    window=10,
    eval_every=10,
    repeats=2,
    stacked=(3,),
    startup_k=2,
    stack_sizes=(1, 2),
    stack_steps=5,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """`bench.main` on the project (its presets and patience evidence), stdout captured."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returned = bench.main(TINY, ROOT, out)
    result: dict[str, Any] = json.loads(out.read_text())
    assert result == json.loads(json.dumps(returned))  # the file is what `main` returned
    return result, printed.getvalue()


def test_every_figure_is_positive(report: tuple[dict[str, Any], str]) -> None:
    result, _ = report
    assert result["quick"] is False and result["config"]["window"] == TINY.window
    expected = {f"engine_k{k}_{d}" for k in (3, 1) for d in ("d100", "d20")} | {
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
        share = e["eval_share_every_evaluation"]
        assert 0 < share < 1, name
        assert len(e["samples_eval_share"]) == result["config"]["repeats"]
        assert min(e["samples_eval_share"]) <= share <= max(e["samples_eval_share"])
        at = e["eval_share_at_horizon"]
        assert set(at) == {"5000", "50000"}
        # Testing only where a number needs it never costs more than testing every time.
        assert all(0 < v <= share + 1e-12 for v in at.values()), (name, at)
        assert all(v > 0 for v in e["unit_costs"].values()), name
    paper = result["paper_estimate"]
    assert paper["total_s"] > 0 and paper["preset"] == "paper.yaml"
    preset = load_params(ROOT / "presets" / "paper.yaml").train
    assert (paper["patience"], paper["iterations"]) == (preset.patience, preset.iterations)
    # The patience evidence gives the new minima; a committed study of the preset's
    # protocol, where there is one, gives the stops of every round.
    evidence = str(ROOT / "reports" / "patience" / "curves.json")
    study, fractions = bench.result_fractions(
        ROOT / "reports" / "results", ROOT / "presets" / "paper.yaml"
    )
    source = f"{study} (stops), {evidence} (new minima)" if fractions else evidence
    assert paper["profile"] == source


def test_ratios_are_consistent_with_the_figures(report: tuple[dict[str, Any], str]) -> None:
    result, stdout = report
    rates = {k: f["net_it_per_s"] for k, f in result["figures"].items()}
    names = set(result["ratios"])
    for d in ("d100", "d20"):
        assert {f"a_k3_over_c_{d}", f"a_k3_over_d_{d}", f"b_over_c_{d}"} == {
            n for n in names if n.endswith(d)
        }
    for name, r in result["ratios"].items():
        assert r["value"] > 0
        assert math.isclose(r["value"], rates[r["numerator"]] / rates[r["denominator"]]), name
        assert name in stdout
    compute = result["compute"]
    total = compute["flops_per_net_iteration"]["total"]
    for key, gflops in compute["gflops_per_s"].items():
        assert math.isclose(gflops, rates[key] * total / 1e9), key
    assert "engine_k3_d100" in compute["gflops_per_s"] and "sustained:" in stdout
    c = result["ratios"]["a_k3_over_c_d100"]
    assert (c["numerator"], c["denominator"]) == ("engine_k3_d100", "keras_masked_d100")
    b = result["ratios"]["b_over_c_d20"]
    assert (b["numerator"], b["denominator"]) == ("engine_k1_d20", "keras_masked_d20")


def test_targets_are_reported_pass_or_fail(report: tuple[dict[str, Any], str]) -> None:
    result, stdout = report
    targets = result["targets"]
    assert any(t["name"].startswith("(a)/(c)") for t in targets)
    assert any(t["name"].startswith("evaluation share at 50,000") for t in targets)
    assert any(t["name"].startswith("paper preset estimate") for t in targets)
    assert any(t["name"] == "stage startup_s (K=2)" for t in targets)
    assert result["startup"]["k"] == TINY.startup_k
    for t in targets:
        ok = (
            t["value"] >= t["threshold"] if t["direction"] == ">=" else t["value"] <= t["threshold"]
        )
        assert t["pass"] is ok
        assert f"{'PASS' if ok else 'FAIL'}  {t['name']}" in stdout


def test_stack_line_prices_the_stable_step_and_shows_its_bits(
    report: tuple[dict[str, Any], str],
) -> None:
    """The stable step against the batched one at K = 1 and 2: both timed (the ratio is
    theirs), network 0's bits equal across K with the stable step, not the batched one."""
    result, stdout = report
    stacks = result["stack"]["stacks"]
    assert set(stacks) == {"1", "2"}
    for s in stacks.values():
        assert s["stable_ms"] > 0 and s["batched_ms"] > 0
        assert s["ratio"] == s["stable_ms"] / s["batched_ms"]
        assert len(s["samples_ms"]["stable"]) == TINY.repeats
    stable = {s["network0_sha256"]["stable"] for s in stacks.values()}
    batched = {s["network0_sha256"]["batched"] for s in stacks.values()}
    assert len(stable) == 1 and len(batched) == 2
    assert "network 0's bits: stable step 1 distinct hash(es) over the Ks, batched step 2" in stdout
    names = {t["name"] for t in result["targets"]}
    assert "stable step / batched step at K=2" in names


def test_conv2_line_measures_each_stack_against_one_network_at_a_time(
    report: tuple[dict[str, Any], str],
) -> None:
    result, stdout = report
    conv = result["conv2"]
    assert conv["network"] == "conv2" and conv["input_shape"] == [32, 32, 3]
    assert set(conv["net_it_per_s"]) == {"1", *map(str, TINY.conv_stacks)} == {"1", "2"}
    for k, samples in conv["samples"].items():
        assert len(samples) == TINY.repeats and all(s > 0 for s in samples)
        lo, hi = sorted(samples)
        assert lo <= conv["net_it_per_s"][k] <= hi  # the median of its samples
    ratios = conv["vs_one_at_a_time"]
    assert ratios["1"] == 1.0
    assert ratios["2"] == conv["net_it_per_s"]["2"] / conv["net_it_per_s"]["1"]
    assert "Conv-2 on 32x32x3, batch 60, masks at 50% density" in stdout
    assert f"  K=2  {conv['net_it_per_s']['2']:7.2f} net-it/s  {ratios['2']:5.2f}x one" in stdout


def test_paper_estimate_prices_the_preset_and_its_patience(tmp_path: Path) -> None:
    """The estimate reads presets/paper.yaml; stopping earlier (a profile where every
    network trains half the horizon) halves the training part, and patience 0 ignores it."""
    import yaml

    from lottery.bench.main import StopProfile, UnitCosts, paper_estimate
    from lottery.cli import set_rounds

    p = load_params(ROOT / "presets" / "paper.yaml")
    costs = {k: UnitCosts(k, chunk_s=0.1 * k, val_s=0.02 * k, test_s=0.04 * k) for k in (1, 5, 10)}
    startup = {"stage_overhead_s": 8.0, "compile_train_s": 1.0, "compile_eval_s": 0.5}
    raw = yaml.safe_load((ROOT / "presets" / "paper.yaml").read_text())
    raw["train"]["patience"] = 0
    full_file = tmp_path / "full.yaml"
    full_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    set_rounds(full_file, None)
    raw["train"]["patience"] = 5000
    half_file = tmp_path / "half.yaml"
    half_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    set_rounds(half_file, None)
    half = StopProfile("test", 5000, {"ticket": {0: [0.5, 0.5]}}, [[] for _ in range(5)])
    full = paper_estimate(costs, startup, None, full_file)
    cut = paper_estimate(costs, startup, half, half_file)
    measured = paper_estimate(costs, startup, half, full_file)
    assert full["conditions"]["ticket"]["stages"] == p.study.rounds + 1
    assert full["conditions"]["reinit"]["k"] == p.study.trials * p.controls.reinit_repeats
    # No evidence: 16 stages of (8 s + 500 chunks x (0.5 + 0.1) s + 500 tests x 0.2 s).
    assert full["conditions"]["ticket"]["total_s"] == pytest.approx(16 * (8 + 300 + 100))
    # Patience 0 with evidence: every iteration trained, tests on the grid only (10).
    assert measured["conditions"]["ticket"]["total_s"] == pytest.approx(16 * (8 + 300 + 2))
    # half the iterations, 3 rebuilds of the stack (5 -> 2) at 2 s each
    assert cut["conditions"]["ticket"]["total_s"] == pytest.approx(16 * (8 + 150 + 2 + 6))


def test_flops_per_net_iteration_counts_lenet_by_hand() -> None:
    # LeNet-300-100: 784*300 + 300*100 + 100*10 = 266,200 multiply-adds per example.
    from lottery.bench.main import flops_per_net_iteration

    f = flops_per_net_iteration(batch_size=60, n_eval=15_000, eval_every=100)
    assert f["forward"] == 2 * 60 * 266_200
    # kernel gradients (= forward) + activation gradients of fc2 and out (not of the input)
    assert f["backward"] == 2 * 60 * 266_200 + 2 * 60 * (300 * 100 + 100 * 10)
    assert f["evaluation"] == 2 * 15_000 * 266_200 / 100
    assert f["total"] == f["forward"] + f["backward"] + f["evaluation"]
    assert 0.53 < f["evaluation"] / f["total"] < 0.55  # why evaluation can't be <= 25% of time


def test_test_evaluations_are_the_union_over_a_stack() -> None:
    """A stack tests where any of its networks reaches a new minimum, on the test_every
    grid and at the horizon: measured on stacks of K evidence runs."""
    from lottery.bench.main import StopProfile, test_evaluations

    runs = [[100, 200, 300], [100, 200, 400], [100, 500], [100, 200]]
    profile = StopProfile("test", 0, {"ticket": {0: [1.0]}}, runs)
    # K=2: stacks {100,200,300,400} and {100,200,500}, plus the grid {500, 1000}.
    assert test_evaluations(1000, 100, 500, 2, profile) == (6 + 4) / 2
    # K=1: per run, with the grid.
    assert test_evaluations(1000, 100, 500, 1, profile) == (5 + 5 + 3 + 4) / 4
    # Never more than one per evaluation; without evidence, every evaluation.
    assert test_evaluations(300, 100, 100, 4, profile) == 3
    assert test_evaluations(1000, 100, 500, 2, None) == 10
