"""Parallel experiments on one MLflow server: two `dvc exp run --queue` experiments on two
queue workers record at the same time into a real `mlflow server`, each complete."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import MlflowServer, make_project, ran_stages, run
from tests.helpers import mlflow_client

SMALL: dict[str, Any] = {
    "study": {"trials": 1, "rounds": 1, "name": "queue"},  # the shared server's own experiment
    "controls": {"reinit": False, "random": False},
    "train": {"iterations": 20, "eval_every": 10},
}
#: Two experiments on two queue workers: both run at once against the one server.
RATES = ["0.001", "0.002"]


def test_parallel_queue_against_one_mlflow_server(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    uri, server_log = mlflow_server.url, mlflow_server.log
    env = {"MLFLOW_TRACKING_URI": uri}
    project = make_project(tmp_path / "exp", SMALL)
    # The data split and θ0 do not depend on the learning rate: prepared once here and
    # committed, the experiments restore them from the shared DVC cache and run the stages
    # that train and record (dense, ticket@r01, visualise, report) at the same time.
    prepared = run(project, "dvc", "repro", "prepare", "init", env=env)
    assert sorted(ran_stages(prepared.stdout)) == ["init", "prepare"], prepared.stdout
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "data split and θ0")
    for lr in RATES:
        run(project, "dvc", "exp", "run", "--queue", "-S", f"train.learning_rate={lr}", env=env)
    try:
        run(project, "dvc", "queue", "start", "-j", "2", env=env)
        deadline = time.monotonic() + 1800
        while True:
            status = run(project, "dvc", "queue", "status", env=env).stdout
            if not re.search(r"\b(Queued|Running)\b", status):
                break
            assert time.monotonic() < deadline, status
            time.sleep(2)  # each `dvc queue status` takes a second or two itself
        names = re.findall(r"^\S+\s+(\S+)\s+.*\b(Success|Failed)\b", status, flags=re.M)
        logs = "".join(
            run(project, "dvc", "queue", "logs", name, env=env, check=False).stdout
            for name, _ in names
        )
        assert status.count("Success") == len(RATES) and "Failed" not in status, status + logs
    finally:
        run(project, "dvc", "queue", "stop", "--kill", env=env, check=False)
    shown = run(project, "dvc", "exp", "show", "--csv", env=env).stdout
    for lr in RATES:
        assert re.search(rf",{re.escape(lr)}(,|$)", shown, flags=re.M), shown
    assert "database is locked" not in logs + server_log.read_text()
    assert not (project / "mlflow.db").exists()  # everything went to the server

    client = mlflow_client(uri)
    study = yaml.safe_load((project / "params.yaml").read_text())["study"]["name"]
    exp = client.get_experiment_by_name(study)
    assert exp is not None
    runs = list(client.search_runs([exp.experiment_id], max_results=1000))
    parents = [r for r in runs if r.data.tags.get("lottery.kind") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len({r.data.tags["lottery.study_hash"] for r in parents}) == len(RATES)
    by_lr: dict[str, list[Any]] = {}
    for r in children:
        by_lr.setdefault(r.data.params["train.learning_rate"], []).append(r)
    assert sorted(by_lr) == sorted(str(float(lr)) for lr in RATES), sorted(by_lr)
    for lr, rs in by_lr.items():
        stages = sorted(r.data.tags["lottery.dvc_stage"] for r in rs if r.info.status == "FINISHED")
        assert stages == ["dense", "ticket@r01"], (lr, stages)
        for r in rs:
            assert r.data.tags.get("lottery.dvc_exp_name"), r.data.tags
            top = {a.path for a in client.list_artifacts(r.info.run_id)}
            assert {"mask", "weights", "curves"} <= top, top
            mask_files = {a.path for a in client.list_artifacts(r.info.run_id, "mask")}
            assert "mask/next_mask.npz" in mask_files, mask_files
            assert "mlflow-artifacts:" in r.info.artifact_uri  # served by the server
