"""The MLflow check on a real SQLite store in tmp_path: the run that made m_1 of a small real
chain (tags and artifacts logged as a training stage logs them) agrees; a deleted, failed
or running run, a wrong tag, a changed artifact or a missing run is named; the sweep of
RUNNING runs tells live owners from gone ones and repairs the gone."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lottery.audit.chain import Auditor
from lottery.audit.links import Problem
from lottery.audit.mlflow_runs import RunStore, state_problems, tag_problems
from lottery.audit.orphans import OrphanSweep
from lottery.core.lineage import RunTags
from lottery.tracking.owners import owner_tags, process_start
from tests.audit.chain_files import ARCH, M0, M1, chain_lock, experiment, make_chain


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


@pytest.fixture
def client(uri: str) -> MlflowClient:
    Path(uri.removeprefix("sqlite:///")).parent.mkdir()
    return MlflowClient(tracking_uri=uri)


@pytest.fixture
def chain(tmp_path: Path, client: MlflowClient) -> dict[str, str]:
    """The chain under tmp_path/study, m_1's run in the store, a dvc.lock of every file."""
    root = tmp_path / "study"
    hashes = make_chain(root, client)
    (root / "dvc.lock").write_text(chain_lock(root))
    return hashes


def audit(tmp_path: Path, uri: str) -> tuple[Auditor, list[str]]:
    """Audit m_1; the problems as `[check] path: message`."""
    auditor = Auditor(tmp_path / "study", uri, ARCH)
    try:
        auditor.mask(M1)
    finally:
        auditor.cleanup()
    return auditor, [f"[{p.check}] {p.path}: {p.message}" for p in auditor.problems()]


def test_the_run_that_made_the_mask_agrees(tmp_path: Path, uri: str, chain: dict[str, str]) -> None:
    auditor, problems = audit(tmp_path, uri)
    assert problems == []
    assert auditor.links[M1].run_id == chain["run_id"]
    assert auditor.links[M1].reproductions == []
    assert auditor.links[M0].run_id is None  # init makes no run, and needs none


def test_a_forced_rerun_is_a_reproduction(
    tmp_path: Path, uri: str, client: MlflowClient, chain: dict[str, str]
) -> None:
    tags = client.get_run(chain["run_id"]).data.tags
    again = client.create_run(experiment(client), tags=tags).info.run_id
    client.set_terminated(again, status="FINISHED")
    auditor, problems = audit(tmp_path, uri)
    assert problems == []
    assert auditor.links[M1].reproductions == [again]


def test_a_missing_run_is_named_with_the_runs_of_the_same_result(
    tmp_path: Path, uri: str, client: MlflowClient, chain: dict[str, str]
) -> None:
    client.delete_run(chain["run_id"])
    # A soft delete leaves the run in the store: make the lineage name one that never was.
    side = tmp_path / "study" / M1.replace(".npz", ".json")
    side.write_text(side.read_text().replace(chain["run_id"], "0" * 32))
    tags = client.get_run(chain["run_id"]).data.tags
    other = client.create_run(experiment(client), tags=tags).info.run_id
    client.set_terminated(other, status="FINISHED")
    _, problems = audit(tmp_path, uri)
    assert (
        f"[mlflow] {M1}: its lineage names MLflow run {'0' * 32}, which does not exist in {uri} "
        f"(runs with the same result: {other})"
    ) in problems


def test_a_changed_artifact_is_named(
    tmp_path: Path, uri: str, client: MlflowClient, chain: dict[str, str]
) -> None:
    artifacts = Path(client.get_run(chain["run_id"]).info.artifact_uri.removeprefix("file://"))
    shutil.copy(tmp_path / "study" / M0, artifacts / "mask" / "next_mask.npz")
    _, problems = audit(tmp_path, uri)
    (found,) = problems
    assert found.startswith(
        f"[mlflow] {M1}: MLflow artifact mask/next_mask.npz of run {chain['run_id']} hashes to "
        f"{chain['m0'][:16]}…, the file on disk to {chain['m1'][:16]}…"
    )


def test_a_deleted_failed_or_orphaned_run_is_no_evidence(
    client: MlflowClient, chain: dict[str, str]
) -> None:
    run_id = chain["run_id"]
    run = client.get_run(run_id)
    exp = client.get_experiment(run.info.experiment_id)
    assert state_problems(run, exp, "dense") == []
    client.delete_run(run_id)
    (deleted,) = state_problems(client.get_run(run_id), exp, "dense")
    assert f"MLflow run {run_id} is deleted (lifecycle stage 'deleted')" in deleted
    client.restore_run(run_id)
    client.set_tag(run_id, "lottery.failure", "interrupted")
    client.set_terminated(run_id, status="FAILED")
    (failed,) = state_problems(client.get_run(run_id), exp, "dense")
    assert failed.startswith(f"MLflow run {run_id} has status FAILED (interrupted)")
    assert failed.endswith("`dvc repro -f -s dense` redoes the stage")
    orphan = client.create_run(exp.experiment_id, tags={**owner_tags(), "lottery.pid": "0"})
    (gone,) = state_problems(orphan, exp, "dense")
    assert f"MLflow run {orphan.info.run_id} is RUNNING: its process is gone (an orphan)" in gone
    client.delete_experiment(exp.experiment_id)
    found = state_problems(client.get_run(run_id), client.get_experiment(exp.experiment_id), "x")
    assert f"belongs to the deleted experiment {exp.name!r}" in found[1]


def test_each_wrong_tag_is_named(client: MlflowClient, chain: dict[str, str]) -> None:
    run = client.get_run(chain["run_id"])
    want = RunTags(dvc_stage="dense", trial=0, mask_sha256=chain["m0"])
    assert tag_problems(run, want) == []
    want = RunTags(dvc_stage="ticket@r01", trial=0, repeat=2)
    assert tag_problems(run, want) == [  # in the order of RunTags' fields
        f"MLflow run {chain['run_id']} has tag lottery.repeat=None, the files say '2'",
        f"MLflow run {chain['run_id']} has tag lottery.dvc_stage='dense', the files say "
        "'ticket@r01'",
    ]


def test_a_store_that_cannot_be_reached_is_one_problem() -> None:
    general: list[Problem] = []
    store = RunStore("http://127.0.0.1:9", general)
    assert store.client() is None and store.client() is None
    (problem,) = general
    assert problem.check == "mlflow"
    assert problem.message.startswith(
        "cannot reach the MLflow tracking server at http://127.0.0.1:9"
    )
    assert "Start it" not in problem.message


def gone_pid() -> tuple[str, str]:
    """The pid and start time of a process that has ended."""
    proc = subprocess.Popen(["sleep", "60"])
    start = process_start(proc.pid)
    proc.kill()
    proc.wait()
    assert start is not None
    return str(proc.pid), start


def test_the_sweep_names_orphans_and_repair_marks_them_failed(
    uri: str, client: MlflowClient
) -> None:
    exp = experiment(client)
    pid, start = gone_pid()
    mine = owner_tags()
    runs = {
        "alive": client.create_run(exp, tags=mine).info.run_id,
        "gone": client.create_run(
            exp, tags={**mine, "lottery.pid": pid, "lottery.pid_start": start}
        ).info.run_id,
        "elsewhere": client.create_run(
            exp, tags={**mine, "lottery.host": "another-machine"}
        ).info.run_id,
    }
    client.create_run(exp)  # a RUNNING run no lottery process owns: not ours to judge
    general: list[Problem] = []
    entries = OrphanSweep(RunStore(uri, general), general).running(repair=False)
    assert {e["run_id"]: e["owner"] for e in entries} == {v: k for k, v in runs.items()}
    (orphan,) = general
    assert orphan.path == f"mlflow run {runs['gone']}"
    assert f"(pid {pid} on {mine['lottery.host']}) is gone" in orphan.message
    where = {e["owner"]: e["where"] for e in entries}
    assert where == {"alive": None, "gone": None, "elsewhere": "host another-machine"}

    general = []
    entries = OrphanSweep(RunStore(uri, general), general).running(repair=True)
    assert general == []
    assert {e["run_id"]: e["repaired"] for e in entries} == {
        runs["alive"]: False,
        runs["gone"]: True,
        runs["elsewhere"]: False,
    }
    repaired = client.get_run(runs["gone"])
    assert repaired.info.status == "FAILED"
    assert "marked FAILED by lottery audit --repair" in repaired.data.tags["lottery.failure"]
    assert client.get_run(runs["alive"]).info.status == "RUNNING"
