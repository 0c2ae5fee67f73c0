"""`lottery audit` on a real tiny study: clean passes; each kind of tampering is named.

Every tampering test works on its own copy of the session's `tiny_study` (`copy_study`:
its MLflow store points at its own artifact folder), so nothing a test does can reach the
shared study.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lottery.core.arch import LENET
from lottery.core.machine import describe, this_machine
from lottery.core.masks import load_mask, mask_hash, save_mask
from lottery.core.params import load_params
from tests.conftest import copy_study, ran_stages, run
from tests.helpers import R01, audit, messages

R00 = "artifacts/ticket/r00/t0/next_mask.npz"  # m_1 of trial 0 (stage dense)
LEAF = "artifacts/ticket/r02/t0/next_mask.npz"  # m_3 of trial 0


def lineage(project: Path, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / rel).with_suffix(".json").read_text())
    return data


@pytest.fixture
def study(tiny_study: Path, tmp_path: Path) -> Path:
    return copy_study(tiny_study, tmp_path / "study")


def test_clean_study_audits_ok(tiny_study: Path) -> None:
    code, result = audit(tiny_study)
    assert code == 0, messages(result)
    assert result["ok"] and result["problems"] == []
    # Per trial: m_0, m_1..m_3 (rounds 0-2), then the control masks params.yaml asks for.
    params = load_params(tiny_study / "params.yaml")
    controls = len(params.pipeline.reinit_rounds) * params.controls.reinit_repeats + len(
        params.pipeline.random_rounds
    )
    assert len(result["targets"]) == params.study.trials * (1 + 3 + controls)
    links = {lk["path"]: lk for lk in result["links"]}
    chain = result["chains"][LEAF]
    assert chain == [
        LEAF,
        "artifacts/ticket/r01/t0/next_mask.npz",
        R00,
        "artifacts/init/t0/mask.npz",
        "artifacts/init/t0/theta0.npz",
    ]
    assert [links[p]["stage"] for p in chain] == [
        "ticket@r02",
        "ticket@r01",
        "dense",
        "init",
        "init",
    ]
    assert all(len(links[p]["run_id"]) == 32 for p in chain[:3])
    assert links[chain[3]]["run_id"] is None  # init makes no MLflow run
    # Every run trained here, with the engine's 2 threads: the tags the stages recorded.
    n_runs = sum(1 for lk in links.values() if lk["run_id"])
    assert result["machines"] == {this_machine(): n_runs}
    assert this_machine() == f"{describe()}, 2 threads"
    for target, ch in result["chains"].items():
        assert ch[-1].endswith("theta0.npz"), target

    text = run(tiny_study, "lottery", "audit", LEAF).stdout
    assert "OK:" in text
    for p in chain:
        assert p in text
    assert links[LEAF]["run_id"] in text


def test_one_flipped_bit_is_named(study: Path) -> None:
    mask = load_mask(study / R01, arch=LENET)
    mask["fc2"][3, 7] = ~mask["fc2"][3, 7]
    save_mask(study / R01, mask, arch=LENET)
    code, result = audit(study)
    assert code == 1
    assert "the mask file was changed" in messages(result, R01, "file")
    assert "dvc.lock (stage ticket@r01) records" in messages(result, R01, "dvc")
    assert "MLflow artifact mask/next_mask.npz" in messages(result, R01, "mlflow")
    assert "next_mask_sha256" in messages(result, R01, "mlflow")
    assert f"its parent {R01} hashes to" in messages(result, LEAF, "lineage")
    # The hint works as given: `dvc checkout` alone refuses to replace a modified file.
    assert "`dvc checkout --force artifacts/ticket/r01` restores" in messages(result, R01, "dvc")
    run(study, "dvc", "checkout", "--force", "artifacts/ticket/r01")
    code, result = audit(study, R01)
    assert code == 0, messages(result)


def test_mask_swapped_with_another_rounds(study: Path) -> None:
    """Swap m_1 and m_2 of trial 0, each with its own lineage JSON (self-consistent pairs)."""
    tmp = study / "swap"
    for suffix in (".npz", ".json"):
        a, b = (study / R00).with_suffix(suffix), (study / R01).with_suffix(suffix)
        shutil.move(a, tmp)
        shutil.move(b, a)
        shutil.move(tmp, b)
    code, result = audit(study, R01)
    assert code == 1
    found = messages(result, R01)
    assert "records round 1, but the file lies where round 2 belongs" in found
    assert "records dvc_stage 'dense'" in found
    assert "dvc.lock (stage ticket@r01) records" in found
    assert messages(result, R00, "lineage")  # the other half of the swap, seen as the parent


def test_mask_file_replaced_by_another_rounds(study: Path) -> None:
    """Only the .npz is swapped: the hash names which mask it really is."""
    shutil.copy(study / R01, study / R00)
    code, result = audit(study, R00)
    assert code == 1
    assert f"(it is the mask recorded for {R01})" in messages(result, R00, "file")


def test_theta0_replaced(study: Path) -> None:
    theta = "artifacts/init/t0/theta0.npz"
    shutil.copy(study / "artifacts/init/t1/theta0.npz", study / theta)
    code, result = audit(study, LEAF)
    assert code == 1
    assert "θ0 was replaced" in messages(result, theta, "file")
    assert "dvc.lock (stage init) records" in messages(result, theta, "dvc")
    assert f"{theta} hashes to" in messages(result, LEAF, "lineage")
    assert "lottery.theta0_sha256" in messages(result, LEAF, "mlflow")


def test_mlflow_artifact_differs_from_file(study: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{study / 'mlflow.db'}")
    run_id = lineage(study, R01)["mlflow_run_id"]
    art_dir = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    assert art_dir.is_relative_to(study), "the copy must own its artifacts"
    shutil.copy(study / R00, art_dir / "mask" / "next_mask.npz")
    assert mask_hash(
        load_mask(art_dir / "mask" / "next_mask.npz", arch=LENET), arch=LENET
    ) != mask_hash(load_mask(study / R01, arch=LENET), arch=LENET)
    code, result = audit(study, R01)
    assert code == 1
    found = messages(result)
    assert f"MLflow artifact mask/next_mask.npz of run {run_id}" in found
    assert "they differ" in found
    assert not messages(result, check="file") and not messages(result, check="dvc")


def test_lineage_points_at_missing_run(study: Path) -> None:
    rel = "artifacts/ticket/r01/t1/next_mask.npz"
    record = lineage(study, rel)
    record["mlflow_run_id"] = "0123456789abcdef0123456789abcdef"
    (study / rel).with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True))
    code, result = audit(study, rel)
    assert code == 1
    found = messages(result, rel, "mlflow")
    assert "names MLflow run 0123456789abcdef0123456789abcdef, which does not exist" in found


def mlflow_client(project: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def test_deleted_failed_or_hidden_runs_are_named(study: Path) -> None:
    """The audit checks every property that makes a run evidence, not only that it exists."""
    client = mlflow_client(study)
    run_id = lineage(study, R01)["mlflow_run_id"]
    client.delete_run(run_id)  # `mlflow runs delete`: a soft delete, hidden from the UI
    code, result = audit(study, R01)
    assert code == 1
    found = messages(result, R01, "mlflow")
    assert f"MLflow run {run_id} is deleted (lifecycle stage 'deleted')" in found, found
    assert f"mlflow runs restore --run-id {run_id}" in found
    client.restore_run(run_id)
    client.set_tag(run_id, "lottery.failure", "interrupted")
    client.set_terminated(run_id, status="FAILED")
    code, result = audit(study, R01)
    assert code == 1
    assert f"MLflow run {run_id} has status FAILED (interrupted)" in messages(result, R01)
    client.set_terminated(run_id, status="FINISHED")
    experiment = client.get_run(run_id).info.experiment_id
    client.delete_experiment(experiment)
    code, result = audit(study, R01)
    assert code == 1
    assert "belongs to the deleted experiment" in messages(result, R01, "mlflow")
    client.restore_experiment(experiment)
    code, result = audit(study, R01)
    assert code == 0, messages(result)


ORPHAN = """
import os, sys
sys.path.insert(0, os.getcwd())
from mlflow import MlflowClient
from lottery.tracking import owners, store
client = MlflowClient(tracking_uri=store.tracking_uri())
exp = client.get_experiment_by_name(sys.argv[1]).experiment_id
tags = {**owners.owner_tags(), "lottery.dvc_stage": sys.argv[2], **dict(
    a.split("=", 1) for a in sys.argv[3:])}
print(client.create_run(exp, run_name="orphan", tags=tags).info.run_id, flush=True)
os._exit(0)  # the process ends, its run stays RUNNING: what a killed stage leaves
"""


def make_run(project: Path, stage: str, *tags: str) -> str:
    """A RUNNING run made by a real process that is gone by the time this returns."""
    name = str(load_params(project / "params.yaml").study.name)
    proc = run(project, "python", "-c", ORPHAN, name, stage, *tags)
    return proc.stdout.strip().splitlines()[-1]


def test_orphaned_running_runs_are_reported_repaired_and_swept(study: Path) -> None:
    """A RUNNING run whose process is gone: the audit names it, `--repair` and the next
    training stage (of any params) mark it FAILED; live and other hosts' runs are kept."""
    import subprocess

    from lottery.tracking.owners import process_start

    client = mlflow_client(study)
    orphan = make_run(study, "ticket@r01")
    code, result = audit(study, R00)
    assert code == 1
    running = {r["run_id"]: r for r in result["running"]}
    assert running[orphan]["owner"] == "gone"
    assert f"is RUNNING but its process (pid {running[orphan]['pid']}" in messages(result)
    code, result = audit(study, R00, repair=True)
    assert code == 0, messages(result)
    assert {r["run_id"]: r["repaired"] for r in result["running"]} == {orphan: True}
    run_now = client.get_run(orphan)
    assert run_now.info.status == "FAILED"
    assert "marked FAILED by lottery audit --repair" in run_now.data.tags["lottery.failure"]

    # The next training stage sweeps the whole store: an orphan of other params (another
    # study hash, another stage), not a run whose process lives, not another host's.
    orphan = make_run(study, "reinit@r02", "lottery.study_hash=0123")
    alive = subprocess.Popen(["sleep", "600"])
    try:
        live = make_run(
            study,
            "ticket@r01",
            f"lottery.pid={alive.pid}",
            f"lottery.pid_start={process_start(alive.pid)}",
        )
        elsewhere = make_run(study, "ticket@r01", "lottery.host=another-machine")
        # pid reuse: the live pid, but a start time of another (gone) process
        reused = make_run(study, "ticket@r01", f"lottery.pid={alive.pid}", "lottery.pid_start=1")
        proc = run(study, "dvc", "repro", "-f", "-s", "ticket@r02")
        assert ran_stages(proc.stdout) == ["ticket@r02"]
        assert "marked 2 run(s) of a killed earlier attempt as FAILED" in proc.stderr + proc.stdout
        for rid in (orphan, reused):
            run_now = client.get_run(rid)
            assert run_now.info.status == "FAILED", rid
            assert "marked FAILED by stage ticket@r02" in run_now.data.tags["lottery.failure"]
        assert client.get_run(live).info.status == "RUNNING"
        assert client.get_run(elsewhere).info.status == "RUNNING"
        code, result = audit(study, R00)
        assert code == 0, messages(result)  # a live run and another host's are no problems
        owners = {r["run_id"]: r["owner"] for r in result["running"]}
        assert owners == {live: "alive", elsewhere: "elsewhere"}
        text = run(study, "lottery", "audit", R00).stdout
        assert f"RUNNING run {elsewhere}" in text and "not checkable from here" in text
    finally:
        alive.kill()
        alive.wait()


def test_missing_target_is_a_usage_error(tiny_study: Path) -> None:
    proc = run(tiny_study, "lottery", "audit", "no/such/mask.npz", check=False)
    assert proc.returncode == 2
    assert "no such mask file" in proc.stderr


def test_flipped_bit_changes_hash() -> None:
    """The premise of the tampering tests: one bit changes mask_hash."""
    from lottery.core.masks import ones_mask

    m = ones_mask(LENET)
    h = mask_hash(m, arch=LENET)
    m["out"][0, 0] = False
    assert mask_hash(m, arch=LENET) != h
    assert np.count_nonzero(~m["out"]) == 1


# ---------------------------------------------------------------- what dvc.lock holds


@pytest.mark.parametrize("text", ["schema: '2.0'\nstages: {}\n", ""])
def test_a_dvc_lock_that_records_nothing_fails(study: Path, text: str) -> None:
    """An empty dvc.lock (or `stages: {}`) leaves every file unchecked: not "OK"."""
    (study / "dvc.lock").write_text(text)
    code, result = audit(study)
    assert code == 1
    assert "dvc.lock records no stage output" in messages(result, "dvc.lock", "dvc")
    proc = run(study, "lottery", "audit", check=False)
    assert proc.returncode == 1 and "OK:" not in proc.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stages: [\n", "not valid YAML (did not find expected node content at line 2, column 1"),
        ("stages:\n  dense: 3\n", "not a DVC lock file (stage dense is not a mapping)"),
    ],
)
def test_a_malformed_dvc_lock_is_one_error_line(study: Path, text: str, expected: str) -> None:
    (study / "dvc.lock").write_text(text)
    proc = run(study, "lottery", "audit", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr and "git checkout dvc.lock" in proc.stderr


# ---------------------------------------------------------------- the params at hand


def test_files_of_another_study_are_named(study: Path) -> None:
    """Fewer rounds: another params hash, but no finished stage depends on the change, so
    the chain still agrees. Another learning rate recorded with `dvc commit -f` (as if
    another study's files had been copied in): every trained link is named, with the
    param that differs and the run that logged it."""
    run(study, "lottery", "rounds", "1")
    code, result = audit(study)
    assert code == 0, messages(result)
    params = study / "params.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.0012", "learning_rate: 0.002"))
    run(study, "dvc", "commit", "-f", "-q")
    assert "up to date" in run(study, "dvc", "status").stdout  # DVC sees nothing wrong
    code, result = audit(study, R00)
    assert code == 1
    found = messages(result, R00, "params")
    run_id = lineage(study, R00)["mlflow_run_id"]
    assert f"MLflow run {run_id} of stage dense logged train.learning_rate 0.0012" in found
    assert "(params.yaml: 0.002)" in found and "`dvc repro -f -s dense`" in found
    assert not messages(result, check="file") and not messages(result, check="dvc")


# ---------------------------------------------------------------- what is not a mask


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("artifacts/init/t0/theta0.npz", "is θ0, where every chain ends, not a mask: "),
        ("artifacts/ticket/r00/t0/next_mask.json", "is the lineage of a mask: `lottery audit "),
        ("dvc.yaml", "dvc.yaml is not a mask of the study: `lottery audit` takes m_0"),
        ("artifacts/dense/t0/trained.npz", "is not a mask of the study"),
    ],
)
def test_a_file_that_is_not_a_mask_is_one_usage_line(
    tiny_study: Path, target: str, expected: str
) -> None:
    proc = run(tiny_study, "lottery", "audit", target, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr
    assert "dvc checkout" not in proc.stderr and "regenerate" not in proc.stderr
