"""MLflow as the pipeline records it: the run tree, no runs from a no-op `dvc repro`, a real
remote `mlflow server`, a clear early failure when the server cannot be reached, a server
restart during training survived, one parent run per study, and the owner of a run told
apart from processes of other machines, boots and PID namespaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag

from lottery.core import paths
from lottery.core.arch import LENET
from lottery.core.machine import describe
from lottery.core.masks import load_mask, mask_hash
from lottery.core.params import load_params
from lottery.tracking import owners, recorder, store
from lottery.tracking.parents import study_key
from tests.conftest import (
    ROOT,
    MlflowServer,
    base_env,
    copy_study,
    free_port,
    make_project,
    ran_stages,
    run,
    start_mlflow_server,
)

#: A short study for the tests that run their own `dvc repro`: dense + one pruning round.
SHORT: dict[str, Any] = {
    "study": {"rounds": 1},
    "controls": {"random": False, "reinit": False},
}


def experiment_name(project: Path) -> str:
    return str(yaml.safe_load((project / "params.yaml").read_text())["study"]["name"])


def all_runs(client: MlflowClient) -> list[Any]:
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=5000))


def lineage(project: Path, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / rel).with_suffix(".json").read_text())
    return data


# ---------------------------------------------------------------- (a) the run tree


def test_run_tree(tiny_study: Path) -> None:
    import mlflow

    uri = f"sqlite:///{tiny_study / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment_name(tiny_study))
    assert exp is not None
    mlflow.set_tracking_uri(uri)
    try:
        frame = mlflow.search_runs([exp.experiment_id])
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    params = load_params(tiny_study / "params.yaml")
    stages = {"dense", *(f"ticket@{n}" for n in params.pipeline.rounds)}
    stages |= {f"reinit@{n}" for n in params.pipeline.reinit_rounds}
    stages |= {f"random@{n}" for n in params.pipeline.random_rounds}
    per_trial = 1 + len(params.pipeline.rounds) + len(params.pipeline.random_rounds)
    per_trial += len(params.pipeline.reinit_rounds) * params.controls.reinit_repeats
    n_children = params.study.trials * per_trial
    assert len(frame) == 1 + n_children

    runs = list(client.search_runs([exp.experiment_id]))
    parents = [r for r in runs if r.data.tags.get("lottery.kind") == "study"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["study.trials"] == str(params.study.trials)
    children = [r for r in runs if r is not parent]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)

    # One child per (stage, trial, condition, repeat).
    key = {
        (
            r.data.tags["lottery.dvc_stage"],
            r.data.tags["lottery.trial"],
            r.data.tags["lottery.condition"],
            r.data.tags.get("lottery.repeat"),
        )
        for r in children
    }
    assert len(key) == len(children) == n_children
    assert {k[0] for k in key} == stages

    head = run(tiny_study, "git", "rev-parse", "HEAD").stdout.strip()
    split_sha = json.loads((tiny_study / "artifacts/data/manifest.json").read_text())[
        "split_sha256"
    ]
    curves_cache: dict[str, Any] = {}
    for r in children:
        tags = r.data.tags
        t, cond, stage = (
            int(tags["lottery.trial"]),
            tags["lottery.condition"],
            tags["lottery.dvc_stage"],
        )
        k = int(tags["lottery.round"])
        name = paths.round_name(k)
        theta = json.loads((tiny_study / paths.theta0_path(t).with_suffix(".json")).read_text())
        assert tags["lottery.theta0_sha256"] == theta["sha256"]
        assert tags["lottery.study_hash"] == parent.data.tags["lottery.study_hash"]
        assert tags["lottery.git_commit"].startswith(head)
        assert tags["lottery.device"]
        assert tags["lottery.cpu"] == describe()
        assert tags["lottery.threads"] == "2"  # fixed, whatever the cores
        assert 0 < float(tags["lottery.density"]) <= 1
        m_k = paths.round_mask_path(k, t).as_posix()
        if cond == "ticket":
            own = paths.next_mask_path(name, t).as_posix()
            assert tags["lottery.mask_sha256"] == lineage(tiny_study, m_k)["sha256"]
            assert tags["lottery.next_mask_sha256"] == lineage(tiny_study, own)["sha256"]
        else:
            key_ = paths.run_key(t, 0) if cond == "reinit" else paths.run_key(t)
            own = paths.control_mask_path(cond, name, key_).as_posix()
            assert tags["lottery.mask_sha256"] == lineage(tiny_study, own)["sha256"]
            assert tags["lottery.source_mask_sha256"] == lineage(tiny_study, m_k)["sha256"]
        assert lineage(tiny_study, own)["mlflow_run_id"] == r.info.run_id
        assert stage == lineage(tiny_study, own)["dvc_stage"]

        # Curves: the iteration as step, one value per evaluation (30 iterations / 10).
        curves_file = tiny_study / f"artifacts/{cond}/{name}/curves.json"
        curves = curves_cache.setdefault(str(curves_file), json.loads(curves_file.read_text()))
        run_key = Path(own).parent.name
        history = client.get_metric_history(r.info.run_id, "val_loss")
        assert [m.step for m in history] == [10, 20, 30]
        assert [m.step for m in history] == [int(i) for i in curves["runs"][run_key]["iteration"]]
        assert [m.value for m in history] == pytest.approx(curves["runs"][run_key]["val_loss"])
        assert "test_accuracy_at_early_stop" in r.data.metrics
        assert r.data.params["train.iterations"] == "30"
        # Logged at each evaluation as it happened: real, non-decreasing timestamps; the
        # test curve on its own (sparser or equal) grid.
        stamps = [m.timestamp for m in history]
        assert stamps == sorted(stamps) and stamps[0] >= r.info.start_time
        tests = client.get_metric_history(r.info.run_id, "test_accuracy")
        run_curves = curves["runs"][run_key]
        assert [m.step for m in tests] == [int(i) for i in run_curves["test_iteration"]]
        assert r.data.tags["lottery.stop_reason"] in ("horizon", "patience")
        assert r.data.metrics["stop_iteration"] == run_curves["iteration"][-1]
        # MLflow's standard context tags, as mlflow.start_run would set them.
        assert r.data.tags["mlflow.source.name"].endswith("stages/train.py")
        assert r.data.tags["mlflow.source.git.commit"] == head
        assert r.data.tags["mlflow.user"]
        assert r.data.tags["mlflow.runName"] == r.info.run_name

        # Artifacts: the mask and its JSON, the trained weights, the curves.
        arts = {
            a.path
            for d in ("mask", "weights", "curves")
            for a in client.list_artifacts(r.info.run_id, d)
        }
        mask_name = Path(own).name
        assert {f"mask/{mask_name}", f"mask/{Path(mask_name).with_suffix('.json')}"} <= arts
        assert {"weights/trained.npz", "curves/curves.json"} <= arts
        if cond == "reinit":
            assert "weights/init.npz" in arts

        # The dataset input.
        assert r.inputs is not None
        (ds,) = r.inputs.dataset_inputs
        assert ds.dataset.name == "mnist-split"
        assert ds.dataset.digest == split_sha[:36]
        assert {t_.key: t_.value for t_ in ds.tags}["mlflow.data.context"] == "training"

    # The parent study run holds the headline numbers, the report and the figures.
    summary = json.loads((tiny_study / "reports/summary.json").read_text())
    assert parent.data.metrics["dense_test_accuracy_pct"] == pytest.approx(
        summary["dense_test_accuracy_pct"]
    )
    assert parent.data.metrics["runs"] == n_children
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    local_figures = {p.name for p in (tiny_study / "reports/figures").glob("*.png")}
    assert local_figures and {f"figures/{n}" for n in local_figures} <= figures
    assert "report/report.md" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    }

    # One mask artifact, downloaded, equals the file on disk.
    dense_t0 = next(
        r
        for r in children
        if r.data.tags["lottery.dvc_stage"] == "dense" and r.data.tags["lottery.trial"] == "0"
    )
    local = client.download_artifacts(dense_t0.info.run_id, "mask/next_mask.npz")
    assert mask_hash(load_mask(Path(local), arch=LENET), arch=LENET) == mask_hash(
        load_mask(tiny_study / "artifacts/ticket/r00/t0/next_mask.npz", arch=LENET), arch=LENET
    )


# ---------------------------------------------------------------- (b) no-op repro


def test_second_repro_adds_no_runs(tiny_study: Path, tmp_path: Path) -> None:
    project = copy_study(tiny_study, tmp_path / "study")
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    before = {r.info.run_id for r in all_runs(client)}
    proc = run(project, "dvc", "repro")
    assert ran_stages(proc.stdout) == []
    after = {r.info.run_id for r in all_runs(client)}
    assert after == before


# ---------------------------------------------------------------- (c) a remote server


def test_remote_tracking_server(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    url, art = mlflow_server.url, mlflow_server.artifacts
    # The server is the session's: this test's runs go to an experiment of their own.
    project = make_project(tmp_path / "remote", {**SHORT, "study": {"rounds": 1, "name": "remote"}})
    env = {"MLFLOW_TRACKING_URI": url}
    proc = run(project, "dvc", "repro", env=env)
    assert {"dense", "ticket@r01"} <= set(ran_stages(proc.stdout))
    assert not (project / "mlflow.db").exists(), "recorded locally instead of on the server"

    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(experiment_name(project))
    assert exp is not None
    runs = list(client.search_runs([exp.experiment_id]))
    parents = [r for r in runs if r.data.tags.get("lottery.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("lottery.kind") != "study"]
    assert len(parents) == 1 and len(children) == 2 * 2  # 2 trials x (dense, ticket@r01)
    for r in children:
        tags = r.data.tags
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.info.artifact_uri.startswith("mlflow-artifacts:")
        name = "r00" if tags["lottery.dvc_stage"] == "dense" else "r01"
        rel = f"artifacts/ticket/{name}/t{tags['lottery.trial']}/next_mask.npz"
        assert lineage(project, rel)["mlflow_run_id"] == r.info.run_id
        assert tags["lottery.next_mask_sha256"] == mask_hash(
            load_mask(project / rel, arch=LENET), arch=LENET
        )
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == 3
        local = client.download_artifacts(r.info.run_id, "mask/next_mask.npz", str(tmp_path))
        assert (
            mask_hash(load_mask(Path(local), arch=LENET), arch=LENET)
            == tags["lottery.next_mask_sha256"]
        )
    stored = list((art / exp.experiment_id).rglob("next_mask.npz"))
    assert len(stored) == len(children), "artifacts not stored by the server"

    audit = run(project, "lottery", "audit", "--json", env=env, check=False)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
    assert json.loads(audit.stdout)["tracking_uri"] == url


# ---------------------------------------------------------------- (d) no server


def test_unreachable_server_fails_fast(tmp_path: Path) -> None:
    project = make_project(tmp_path / "offline", {**SHORT, "study": {"rounds": 1, "trials": 1}})
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run(project, "dvc", "repro", env={"MLFLOW_TRACKING_URI": url}, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"cannot reach the MLflow tracking server at {url}" in out
    assert "Nothing was trained or recorded" in out
    assert ran_stages(proc.stdout) == ["prepare", "init", "dense"]
    assert "dense: training" not in out  # failed before any training

    status = json.loads(run(project, "dvc", "status", "--json").stdout)
    assert "dense" in status and "ticket@r01" in status
    assert "prepare" not in status and "init" not in status
    assert not (project / "metrics/ticket/r00.json").exists()
    assert not (project / "artifacts/ticket/r00").exists()
    assert not (project / "mlflow.db").exists()


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real SQLite MLflow store for the in-process tests below (creating one runs
    every schema migration, seconds each time); each test uses its own experiment."""
    root = tmp_path_factory.mktemp("store")
    MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_experiments()
    return root


def test_curves_reach_mlflow_while_training_runs(sqlite_store: Path) -> None:
    """LiveCurves sends each evaluation as it comes (here at once: every_s=0), so a run's
    curve is visible in the store before training ends."""
    from mlflow.entities import RunStatus

    from lottery.tracking.curves import LiveCurves

    client = MlflowClient(tracking_uri=f"sqlite:///{sqlite_store / 'mlflow.db'}")
    exp = client.create_experiment("live", artifact_location=(sqlite_store / "mlruns").as_uri())
    runs = [client.create_run(exp).info.run_id for _ in range(2)]
    live = LiveCurves(client, runs, every_s=0.0)
    live(10, {0: {"val_loss": 0.5}, 1: {"val_loss": 0.7, "test_accuracy": 0.9}})
    assert [m.value for m in client.get_metric_history(runs[1], "val_loss")] == [0.7]
    assert client.get_run(runs[0]).info.status == RunStatus.to_string(RunStatus.RUNNING)
    later = LiveCurves(client, runs, every_s=3600.0)  # batched: nothing until flush
    later(20, {0: {"val_loss": 0.4}})
    assert [m.step for m in client.get_metric_history(runs[0], "val_loss")] == [10]
    later.flush()
    history = client.get_metric_history(runs[0], "val_loss")
    assert [(m.step, m.value) for m in history] == [(10, 0.5), (20, 0.4)]
    assert history[0].timestamp <= history[1].timestamp


def test_stages_logging_one_dataset_at_once_all_get_it(sqlite_store: Path) -> None:
    """Four threads log the same new dataset to four runs at the same moment, ten times:
    on a real SQL store a bare `log_inputs` loses this race on the dataset's unique key
    (IntegrityError) for some of them; every run must end up with the dataset."""
    client = MlflowClient(f"sqlite:///{sqlite_store / 'mlflow.db'}")
    experiment = client.create_experiment("race")
    errors: list[str] = []
    for i in range(10):
        runs = [client.create_run(experiment).info.run_id for _ in range(4)]
        barrier = threading.Barrier(len(runs))
        dataset = Dataset(name=f"split-{i}", digest=f"{i:036d}", source_type="local", source="x")
        inputs = [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])]

        def log(
            run_id: str,
            inputs: list[DatasetInput] = inputs,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            try:
                recorder.log_inputs(client, run_id, inputs)
            except Exception as exc:  # collected: the assertion names it
                errors.append(repr(exc))

        threads = [threading.Thread(target=log, args=(r,)) for r in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for run_id in runs:
            run_inputs = client.get_run(run_id).inputs
            assert run_inputs is not None, run_id
            names = [d.dataset.name for d in run_inputs.dataset_inputs]
            assert names == [f"split-{i}"], (run_id, names, errors)
    assert errors == []


# ---------------------------------------------------------------- (e) a server restart


class RestartableServer:
    """A real `mlflow server` of this test's own (the session's is shared and stays up),
    stopped and started again on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        with (self.root / "server.log").open("ab") as out:
            self.proc = start_mlflow_server(self.root, self.port, 1, self.root / "artifacts", out)
        if wait:
            self.wait_up()

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_up(self) -> None:
        deadline = time.monotonic() + 120
        while not self.up():
            assert self.proc is not None and self.proc.poll() is None, "server exited"
            assert time.monotonic() < deadline, (self.root / "server.log").read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def restartable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableServer]:
    server = RestartableServer(tmp_path)
    server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    try:
        yield server
    finally:
        server.stop()


def study_params(rounds: int = 2, lr: float = 0.0012) -> dict[str, Any]:
    """The shape of `Params.as_dict()` that the recorder reads (a parent's params)."""
    return {
        "study": {"name": "s", "seed": 0, "trials": 2, "rounds": rounds},
        "train": {"iterations": 30, "learning_rate": lr},
    }


def test_a_server_restart_during_training_loses_nothing(restartable: RestartableServer) -> None:
    """The server stops for a few seconds while a network trains: training goes on, its
    curves wait in memory, the last send waits for the server, nothing is lost; a server
    gone for longer than OUTAGE_S ends the stage with one line."""
    rec = recorder.StudyRecorder("outage", "ab" * 32, study_params())
    run_id = rec.start_child("net", {"lottery.dvc_stage": "dense"})
    live = rec.live_curves([run_id], every_s=0.0)
    for it in range(1, 4):
        live(it * 10, {0: {"val_loss": 1.0 / it}})
    restartable.stop()
    began = time.monotonic()
    for it in range(4, 9):  # evaluations while the server is down: no error, no long wait
        live(it * 10, {0: {"val_loss": 1.0 / it}})
    assert time.monotonic() - began < 20
    assert live.buffered() == 5
    threading.Thread(target=restartable.start, kwargs={"wait": False}).start()
    for it in range(9, 11):
        live(it * 10, {0: {"val_loss": 1.0 / it}})
    live.flush()  # waits until the server is back
    rec.log_summary(run_id, {"stop_iteration": 100.0})
    rec.end(run_id, ok=True)
    client = MlflowClient(tracking_uri=restartable.url)
    history = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == list(range(10, 110, 10))
    assert [m.value for m in history] == pytest.approx([1.0 / k for k in range(1, 11)])
    assert client.get_run(run_id).info.status == "FINISHED"

    # A server that stays away: after OUTAGE_S one line naming the server and the fix.
    restartable.stop()
    outage = store.OUTAGE_S
    store.OUTAGE_S = 2.0
    try:
        with pytest.raises(store.TrackingError) as info:
            rec.log_summary(run_id, {"x": 1.0})
    finally:
        store.OUTAGE_S = outage
    message = str(info.value)
    assert "\n" not in message
    assert f"the MLflow tracking store at {restartable.url} has not answered for" in message
    assert "rerun `dvc repro`" in message


# ---------------------------------------------------------------- (f) the study's parent run


def parents(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], "tags.`lottery.kind` = 'study'")
    return list(runs)


def test_one_parent_per_study_named_after_it_and_its_experiment(
    sqlite_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds grow (another params hash): the same parent. Another learning rate: another
    study, another parent. The parent is named after the study and the DVC experiment
    and carries `lottery.dvc_exp_name`."""
    uri = f"sqlite:///{sqlite_store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_ROOT", str(sqlite_store))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    first = recorder.StudyRecorder("parents", "1" * 64, study_params(rounds=2))
    monkeypatch.setenv("DVC_EXP_NAME", "lean-pika")
    grown = recorder.StudyRecorder("parents", "2" * 64, study_params(rounds=5))
    assert grown.parent_id == first.parent_id
    client = MlflowClient(tracking_uri=uri)
    (parent,) = parents(client, "parents")
    assert parent.info.run_name == "parents (lean-pika)"
    tags = parent.data.tags
    assert tags["lottery.dvc_exp_name"] == "lean-pika"
    assert tags["lottery.rounds"] == "5" and tags["lottery.study_hash"] == "2" * 64
    assert parent.data.params["study.trials"] == "2"
    assert "study.rounds" not in parent.data.params  # it grows: the tag `lottery.rounds`

    monkeypatch.setenv("DVC_EXP_NAME", "sharp-lynx")
    other = recorder.StudyRecorder("parents", "3" * 64, study_params(rounds=5, lr=0.002))
    assert other.parent_id != first.parent_id
    names = {r.info.run_name: r.data.tags for r in parents(client, "parents")}
    assert set(names) == {"parents (lean-pika)", "parents (sharp-lynx)"}
    assert names["parents (sharp-lynx)"]["lottery.dvc_exp_name"] == "sharp-lynx"


def test_a_parent_of_earlier_code_is_kept(
    sqlite_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store whose parent was found by `lottery.study_hash` alone: adopted, not doubled."""
    uri = f"sqlite:///{sqlite_store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_ROOT", str(sqlite_store))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("legacy")
    old = client.create_run(
        exp,
        run_name="study-4444444444",
        tags={"lottery.kind": "study", "lottery.study_hash": "4" * 64},
    ).info.run_id
    rec = recorder.StudyRecorder("legacy", "4" * 64, study_params())
    assert rec.parent_id == old
    (parent,) = parents(client, "legacy")
    assert parent.info.run_name == "legacy"
    assert parent.data.tags["lottery.study_key"] == study_key(study_params())


# ---------------------------------------------------------------- (g) whose run is it


SPAWN_RUN = """
import sys
from mlflow import MlflowClient
from lottery.tracking import owners
client = MlflowClient(tracking_uri=sys.argv[1])
tags = {**owners.owner_tags(), **dict(a.split("=", 1) for a in sys.argv[3:])}
print(client.create_run(sys.argv[2], tags=tags).info.run_id, flush=True)
"""


def spawn_run(uri: str, experiment: str, *tags: str) -> str:
    """A RUNNING run created by a real process (its owner tags, overridden by `tags`),
    which has ended by the time this returns."""
    proc = subprocess.run(
        [sys.executable, "-c", SPAWN_RUN, uri, experiment, *tags],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_runs_of_another_boot_or_pid_namespace_are_never_swept(sqlite_store: Path) -> None:
    """Same host name, but another machine (another boot id) or another PID namespace:
    the pid means nothing here, so the run is "elsewhere", never marked FAILED. A run of
    this boot and namespace whose process is gone is."""
    uri = f"sqlite:///{sqlite_store / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("owners")
    gone = spawn_run(uri, exp)
    other_boot = spawn_run(uri, exp, "lottery.boot_id=00000000-0000-0000-0000-000000000000")
    other_ns = spawn_run(uri, exp, "lottery.pid_ns=pid:[1]")
    swept = owners.fail_orphans(client, "this test")
    assert gone in swept and other_boot not in swept and other_ns not in swept
    assert owners.boot_id() and owners.pid_namespace()  # this test's premise: Linux
    assert client.get_run(other_boot).info.status == "RUNNING"
    tags = client.get_run(other_ns).data.tags
    assert owners.owner_state(tags) == "elsewhere"
    assert "another PID namespace" in owners.where(tags)
    assert "another boot" in owners.where(client.get_run(other_boot).data.tags)


UNSHARE_PID = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]


def can_unshare_pid() -> bool:
    try:
        proc = subprocess.run(
            [*UNSHARE_PID, "true"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.mark.skipif(not can_unshare_pid(), reason="unshare --pid is not permitted here")
def test_a_live_run_in_another_pid_namespace_is_left_alone(sqlite_store: Path) -> None:
    """A stage in its own PID namespace (`unshare --pid`: its pid is 1 there, the init of
    this one here, started at another time) records a run and keeps running: the sweep
    must not take it for an orphan whose pid was reused and mark it FAILED."""
    uri = f"sqlite:///{sqlite_store / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("namespaces")
    code = (
        "import sys, time\n"
        "from mlflow import MlflowClient\n"
        "from lottery.tracking import owners\n"
        "client = MlflowClient(tracking_uri=sys.argv[1])\n"
        "run = client.create_run(sys.argv[2], tags=owners.owner_tags())\n"
        "print(run.info.run_id, flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [*UNSHARE_PID, sys.executable, "-c", code, uri, exp],
        cwd=ROOT,
        env=base_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert len(run_id) == 32, run_id
        tags = client.get_run(run_id).data.tags
        assert tags["lottery.pid"] == "1"  # its pid in its own namespace
        assert run_id not in owners.fail_orphans(client, "this test")
        assert client.get_run(run_id).info.status == "RUNNING"
        assert owners.owner_state(tags) == "elsewhere"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
