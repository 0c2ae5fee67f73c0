"""The benchmark in-process on a tiny config: every figure, ratio and target is reported
and consistent, and the paper estimate prices presets/paper.yaml with the stops of a kept
study of its protocol, against that study's measured wall-clock."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from lottery.bench import main as bench
from lottery.bench.config import BenchConfig
from lottery.core.params import load_params

ROOT = Path(__file__).resolve().parents[2]

#: Real MNIST and the real engine and Keras, on windows of 10 iterations: two repeats
#: (a median and its samples), one stacked K besides K = 1.
TINY = BenchConfig(
    window=10,
    eval_every=10,
    repeats=2,
    stacked=(3,),
    startup_k=2,
    stack_sizes=(1, 2),
    stack_steps=5,
)
#: The kept study the bench finds (see `bench_root`) and its wall-clock record.
STUDY = "paper-run"
WALLCLOCK = {
    "seconds": 4.5 * 3600,
    "machine": "2-core test machine",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "started": "2026-12-01T08:00:00+00:00",
    "finished": "2026-12-01T12:30:00+00:00",
}


def bench_root(dest: Path) -> Path:
    """A project for the bench: the real data, presets and patience evidence (linked), and
    under reports/results one kept study of the paper preset's protocol (the metrics of a
    committed 50k study, with presets/paper.yaml as its params) that records a wall-clock."""
    root = dest / "project"
    results = root / "reports" / "results"
    results.mkdir(parents=True)
    for part in ("data", "presets", "reports/patience"):
        (root / part).symlink_to(ROOT / part)
    study = results / STUDY
    shutil.copytree(
        ROOT / "reports" / "results" / "lenet-5trials-50k" / "metrics", study / "metrics"
    )
    shutil.copyfile(ROOT / "presets" / "paper.yaml", study / "params.yaml")
    (study / "wallclock.json").write_text(json.dumps(WALLCLOCK))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bench_root(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def report(project: Path) -> tuple[dict[str, Any], str]:
    """`bench.main` on that project, stdout captured."""
    out = project / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returned = bench.main(TINY, project, out)
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
    # The same probe again, its programs now in the XLA compilation cache.
    assert result["startup"]["startup_cached_s"] > 0
    for part in ("compile_train_cached_s", "compile_eval_cached_s", "stage_overhead_cached_s"):
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


def test_paper_estimate_prices_the_preset_with_the_kept_studys_stops(
    report: tuple[dict[str, Any], str], project: Path
) -> None:
    """The stops of the kept study of the preset's protocol, the evidence's new minima; the
    dense network and every ticket trained to the horizon (`prune.point: horizon`), so
    their training alone costs at least every chunk of every stage at the measured unit
    cost; the controls stop where they settle."""
    result, stdout = report
    paper = result["paper_estimate"]
    preset = load_params(ROOT / "presets" / "paper.yaml")
    t = preset.train
    assert paper["preset"] == "paper.yaml" and paper["point"] == preset.prune.point == "horizon"
    assert (paper["patience"], paper["iterations"]) == (t.patience, t.iterations)
    evidence = project / "reports" / "patience" / "curves.json"
    study = project / "reports" / "results" / STUDY
    assert paper["profile"] == f"{study} (stops), {evidence} (new minima)"
    # Tickets: K = trials, priced at the measured K = 3 engine's per-network cost.
    unit = result["evaluation"]["engine_k3"]["unit_costs"]
    chunk_s = unit["chunk_s"] * preset.study.trials / 3
    ticket = paper["conditions"]["ticket"]
    assert ticket["trains_to_horizon"] is True and ticket["stages"] == preset.study.rounds + 1
    floor = ticket["stages"] * (t.iterations / t.eval_every) * chunk_s
    assert ticket["total_s"] > floor
    for control in ("reinit", "random"):
        assert paper["conditions"][control]["trains_to_horizon"] is False
    assert "stops when settled" in stdout and "trains to the horizon" in stdout


def test_paper_estimate_is_set_against_the_measured_wallclock(
    report: tuple[dict[str, Any], str], project: Path
) -> None:
    result, stdout = report
    paper = result["paper_estimate"]
    ratio = paper["total_s"] / WALLCLOCK["seconds"]
    study = str(project / "reports" / "results" / STUDY)
    assert paper["measured"] == {**WALLCLOCK, "study": study, "estimate_over_measured": ratio}
    line = next(ln for ln in stdout.splitlines() if ln.startswith("  measured: "))
    assert line.startswith(
        f"  measured: 4.50 h on 2-core test machine ({study}, commit 0123456789ab"
    )
    assert line.endswith(f"estimate/measured {ratio:.2f}")
