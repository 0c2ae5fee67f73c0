"""Integration: the real dvc.yaml run by real DVC on real MNIST, tiny params."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from lottery.core import paths
from lottery.core.arch import LENET
from lottery.core.lineage import read_record as read_lineage
from lottery.core.masks import load_mask, mask_hash
from lottery.core.params import load_params
from tests.conftest import copy_study, ran_stages, run, write_params
from tests.helpers import audit, messages

TRAIN_STAGES = [
    "dense",
    "ticket@r01",
    "ticket@r02",
    "reinit@r01",
    "reinit@r02",
    "random@r01",
    "random@r02",
]


def test_tiny_study_runs_every_stage_and_writes_its_outputs(tiny_study: Path) -> None:
    log = (tiny_study / "repro.log").read_text()
    assert ran_stages(log) == ["prepare", "init", *TRAIN_STAGES, "visualise", "report"] or set(
        ran_stages(log)
    ) == {"prepare", "init", *TRAIN_STAGES, "visualise", "report"}
    params = load_params(tiny_study / "params.yaml")
    for cond, names in [
        ("ticket", ["r00", "r01", "r02"]),
        ("reinit", ["r01", "r02"]),
        ("random", ["r01", "r02"]),
    ]:
        for name in names:
            m = json.loads((tiny_study / paths.metrics_path(cond, name)).read_text())
            assert m["condition"] == cond and m["round"] == paths.parse_round(name)
            assert len(m["runs"]) == params.study.trials
            for r in m["runs"].values():
                assert 10 <= r["early_stop_iteration"] <= 30
                assert 0.5 < r["test_accuracy_at_early_stop"] <= 1.0
    # Round k's mask has (1-p)^k of each layer (paper rates: 0.2 hidden, 0.1 output).
    for k, expected in [(1, 0.8), (2, 0.64)]:
        mask = load_mask(tiny_study / paths.round_mask_path(k, 0), arch=LENET)
        assert abs(mask["fc1"].mean() - expected) < 1e-5
        assert abs(mask["out"].mean() - 0.9**k) < 1e-3
    report = (tiny_study / paths.report_path()).read_text()
    assert "| dense (round 0) | 100.0 |" in report
    assert "reinit control, round 2" in report and "random-prune control, round 1" in report
    assert (tiny_study / "reports/figures/accuracy_vs_remaining.png").stat().st_size > 1000
    # Nothing left to do, and the lock knows every stage.
    status = run(tiny_study, "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}
    lock = yaml.safe_load((tiny_study / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"prepare", "init", *TRAIN_STAGES, "visualise", "report"}


def test_lineage_links_each_mask_to_its_parent_and_theta0(tiny_study: Path) -> None:
    for t in range(2):
        theta0_sha = json.loads(
            (tiny_study / paths.theta0_path(t).with_suffix(".json")).read_text()
        )["sha256"]
        for k in range(1, 3):
            mask_file = tiny_study / paths.round_mask_path(k, t)
            rec = read_lineage(mask_file)
            parent = load_mask(tiny_study / paths.round_mask_path(k - 1, t), arch=LENET)
            assert rec["sha256"] == mask_hash(load_mask(mask_file, arch=LENET), arch=LENET)
            assert rec["parent_sha256"] == mask_hash(parent, arch=LENET)
            assert rec["theta0_sha256"] == theta0_sha
            assert rec["round"] == k and rec["trial"] == t
            assert rec["mlflow_run_id"]


def stale(study: Path) -> set[str]:
    """The stages `dvc repro` would run now (DVC's own answer, nothing run)."""
    return set(json.loads(run(study, "dvc", "status", "--json").stdout))


def test_unchanged_repro_runs_nothing_and_forced_rerun_is_an_audited_reproduction(
    tiny_study: Path, tmp_path: Path
) -> None:
    """Nothing is stale after a repro; `dvc repro -f` of one round gives bit-identical masks
    under a new MLflow run, and `lottery audit` reports the old run as a reproduction."""
    study = copy_study(tiny_study, tmp_path / "study")
    assert stale(study) == set()
    r01 = paths.next_mask_path("r01", 0)
    before = {
        t: mask_hash(load_mask(study / paths.next_mask_path("r01", t), arch=LENET), arch=LENET)
        for t in range(2)
    }
    old_run = read_lineage(study / r01)["mlflow_run_id"]
    forced = run(study, "dvc", "repro", "-f", "-s", "ticket@r01")
    assert ran_stages(forced.stdout) == ["ticket@r01"]
    after = {
        t: mask_hash(load_mask(study / paths.next_mask_path("r01", t), arch=LENET), arch=LENET)
        for t in range(2)
    }
    assert before == after  # same params and seed: bit-identical masks
    assert read_lineage(study / r01)["mlflow_run_id"] != old_run
    # The new lineage names the new MLflow run, so only ticket@r01's dependants are stale
    # (report too: it reads the learning curves under artifacts/ticket).
    assert stale(study) <= {"ticket@r02", "reinit@r02", "random@r02", "visualise", "report"}
    code, result = audit(study, str(paths.next_mask_path("r02", 0)))
    assert code == 0, messages(result)
    assert old_run in result["reproductions"][str(r01)]
    text = run(study, "lottery", "audit", str(r01)).stdout
    assert text.count(f"reproduction: run {old_run}") == 1


def test_more_rounds_and_a_params_change_rerun_exactly_the_affected_stages(
    tiny_study: Path, tmp_path: Path
) -> None:
    """Each change marks exactly the stages it touches stale (`dvc status`); one real
    `dvc repro` then runs them and what their new outputs feed: the new round from the
    cached ones, the reinit stages again, the figures and the report."""
    study = copy_study(tiny_study, tmp_path / "study")
    run(study, "git", "add", "-A")
    run(study, "git", "commit", "-q", "-m", "results of the tiny study")
    before = run_records(study)
    write_params(study, {"controls": {"reinit_repeats": 2}})
    reinit = {"reinit@r01", "reinit@r02", "report"}  # report lists the settings
    assert stale(study) == reinit
    out = run(study, "lottery", "rounds", "3")
    assert "study.rounds = 3" in out.stdout
    new_round = {"ticket@r03", "reinit@r03", "random@r03", "visualise", "report"}
    assert stale(study) == reinit | new_round
    proc = run(study, "dvc", "repro")
    assert sorted(ran_stages(proc.stdout)) == sorted(reinit | new_round)
    mask = load_mask(study / paths.round_mask_path(3, 0), arch=LENET)
    assert abs(mask["fc1"].mean() - 0.512) < 1e-5
    assert "ticket, round 3" in (study / paths.report_path()).read_text()
    m = json.loads((study / paths.metrics_path("reinit", "r01")).read_text())
    assert sorted(m["runs"]) == ["t0-rep0", "t0-rep1", "t1-rep0", "t1-rep1"]
    # Draw 0 trained in a stack of 4 instead of 2: its records are bit-identical.
    after = run_records(study)
    assert before == {k: after[k] for k in before}, "a draw-0 record changed"
    diff = run(study, "dvc", "metrics", "diff", "--json")
    changed = json.loads(diff.stdout)
    # The one DVC metric is the compact summary: the run counts moved, dense did not.
    assert list(changed) == ["reports/summary.json"], changed
    moved = changed["reports/summary.json"]
    assert "runs" in moved and not any(k.startswith("dense_") for k in moved), moved
    # The per-cell detail (statistics.json): the reinit cells moved, the old tickets did not.
    old = json.loads(run(study, "git", "show", "HEAD:reports/statistics.json").stdout)["cells"]
    new = json.loads((study / "reports/statistics.json").read_text())["cells"]
    assert new["reinit"]["r01"] != old["reinit"]["r01"]
    assert {r: new["ticket"][r] for r in old["ticket"]} == old["ticket"]
    assert set(new["ticket"]) - set(old["ticket"]) == {"r03"}
    params_diff = run(study, "dvc", "params", "diff", "--json")
    assert "controls.reinit_repeats" in params_diff.stdout


def test_code_edits_stale_only_the_stages_that_import_them(
    tiny_study: Path, tmp_path: Path
) -> None:
    """A stage's code deps are its import closure, and the closures are narrow: an edit to
    report, figure, analysis, audit, bench or CLI code stales no training stage (DVC's own
    answer, `dvc status`); an edit to the engine stales every training stage and nothing
    else."""
    study = copy_study(tiny_study, tmp_path / "study")
    lib = study / "lottery"
    originals = {p: p.read_bytes() for p in lib.rglob("*.py")}

    def stale_after(*files: Path) -> set[str]:
        for f, text in originals.items():
            f.write_bytes(text)
        for f in files:
            f.write_bytes(originals[f] + b"\n# edited\n")
        return stale(study)

    upper = [
        p
        for p in originals
        if p.parent.name in ("analysis", "report", "audit", "bench") or p.name == "cli.py"
    ]
    assert len(upper) > 15
    assert stale_after(*upper) == {"visualise", "report"}
    assert stale_after(lib / "report" / "text.py") == {"report"}
    assert stale_after(lib / "report" / "figures.py") == {"visualise", "report"}
    assert stale_after(lib / "engine" / "training.py") == set(TRAIN_STAGES)
    assert stale_after() == set()


def run_records(study: Path) -> dict[tuple[str, str, str], Any]:
    """Every run's record, by (condition, round, run key): its metrics entry, its curves,
    and the hashes of its mask and weights files."""
    out: dict[tuple[str, str, str], Any] = {}
    for metrics_file in sorted((study / "metrics").rglob("*.json")):
        cond, name = metrics_file.parent.name, metrics_file.stem
        metrics = json.loads(metrics_file.read_text())["runs"]
        layout = paths.Layout(study)
        curves = json.loads(layout.curves_path(cond, name).read_text())["runs"]
        for key, entry in metrics.items():
            dirs = [study / "artifacts" / cond / name / key]
            if (cond, name) == ("ticket", "r00"):  # θ0, m_0, θ_j and the dense weights too
                dirs += [study / "artifacts" / "init" / key, study / "artifacts" / "dense" / key]
            files = sorted(f for d in dirs for f in d.glob("*.npz"))
            hashes = {
                str(f.relative_to(study)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files
            }
            out[(cond, name, key)] = (entry, curves[key], hashes)
    return out


def test_a_third_trial_leaves_the_first_two_bit_identical(tiny_study: Path, tmp_path: Path) -> None:
    """`study.trials` 2 -> 3: each stage of round 0 and 1 (dense, ticket, reinit, random)
    trains a stack of 3 instead of 2, and trials 0 and 1 keep every record bit for bit:
    metrics, curves, masks and weights (θ0, θ_j, trained). Round 2 repeats round 1's
    stages on other masks, so it is not rerun here."""
    study = copy_study(tiny_study, tmp_path / "study")
    before = run_records(study)
    write_params(study, {"study": {"trials": 3}})
    run(study, "dvc", "repro", "ticket@r01", "reinit@r01", "random@r01")
    after = run_records(study)
    assert {k for k in after if k[2].startswith("t2")}, "trial 2 did not train"
    assert len(before) == len(after) - len([k for k in after if k[2].startswith("t2")])
    changed = [k for k in before if before[k] != after[k]]
    assert changed == [], changed


def test_paths_agree_with_dvc_yaml() -> None:
    dvc = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]

    def outs(stage: dict[str, Any]) -> set[str]:
        return {o if isinstance(o, str) else next(iter(o)) for o in stage["outs"]}

    assert str(paths.prepared_dir()) in outs(dvc["prepare"])
    assert str(paths.init_dir()) in outs(dvc["init"])
    assert outs(dvc["dense"]) == {
        str(paths.stage_dir("ticket", "r00")),
        str(paths.dense_dir()),
        str(paths.metrics_path("ticket", "r00")),
    }
    assert str(paths.figures_dir()) in outs(dvc["visualise"])
    for cond in ("ticket", "reinit", "random"):
        assert outs(dvc[cond]["do"]) == {
            str(paths.stage_dir(cond, "${key}")),
            str(paths.metrics_path(cond, "${key}")),
        }
    # The one declared metric is the compact summary; per-run detail is an output.
    declared = [m for stage in dvc.values() for m in (stage.get("do") or stage).get("metrics", [])]
    assert declared == [{str(paths.summary_metrics_path()): {"cache": False}}]


def test_default_params_are_valid_and_sized_for_a_laptop() -> None:
    p = load_params("params.yaml")
    assert p.train.batch_size == 60 and p.train.learning_rate == 0.0012
    assert p.prune.rates == {"fc1": 0.2, "fc2": 0.2, "out": 0.1}
    assert len(p.pipeline.rounds) == p.study.rounds
    paper = load_params("presets/paper.yaml")
    assert paper.train.iterations == 50_000 and paper.study.trials == 5
    assert paper.data.validation_size == 5000 and paper.controls.reinit_repeats == 3
    # Enough rounds to reach 3.6% of the weights remaining.
    from lottery.core.arch import LAYER_SHAPES
    from lottery.core.pruning import expected_remaining

    kept = sum(
        expected_remaining(a * b, paper.prune.rates[n], paper.study.rounds)
        for n, (a, b) in LAYER_SHAPES.items()
    )
    assert kept / 266_200 <= 0.037
