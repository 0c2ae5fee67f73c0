"""The stage's watchdog, `python -P -m lottery.tracking.watchdog`, against a real SQLite
store: a stage killed outright (SIGKILL) has its open runs marked FAILED with the reason,
by the package the stage runs even when the watchdog's working directory holds another;
runs the stage ended are left as they are, and a watchdog with nothing open exits."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lottery.tracking.watchdog import Watchdog, open_runs
from tests.conftest import ROOT, base_env

#: A stage: starts a run of experiment `sys.argv[2]` in store `sys.argv[1]`, tells its
#: watchdog (working directory `sys.argv[3]`), prints the run id, and waits to be killed.
STAGE = """
import sys, time
from pathlib import Path
from mlflow import MlflowClient
from lottery.tracking.watchdog import Watchdog
client = MlflowClient(tracking_uri=sys.argv[1])
run_id = client.create_run(sys.argv[2]).info.run_id
Watchdog(sys.argv[1], Path(sys.argv[3])).send("run", run_id)
print(run_id, flush=True)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real SQLite MLflow store (its migrations run once for the module)."""
    root = tmp_path_factory.mktemp("watchdog")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def test_open_runs_are_those_started_and_not_ended() -> None:
    lines = ["run a\n", "run b\n", "end a\n", "end c\n", "run c\n", ""]
    assert open_runs(lines) == ["b", "c"]


def test_a_killed_stage_has_its_runs_marked_failed(store: str, tmp_path: Path) -> None:
    # A decoy package in the watchdog's working directory: `-P` keeps it off sys.path.
    decoy = tmp_path / "lottery"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy package was imported')\n")
    client = MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("killed")
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE, store, experiment, str(tmp_path)],
        cwd=ROOT,
        env=base_env({"PYTHONPATH": str(ROOT)}),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert len(run_id) == 32, run_id
        assert client.get_run(run_id).info.status == "RUNNING"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 120
    while client.get_run(run_id).info.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["lottery.failure"] == (
        f"killed: its stage process (pid {proc.pid} on {socket.gethostname()}) died before "
        "finishing the run; marked FAILED by its watchdog"
    )


def test_ended_runs_are_left_alone(store: str, tmp_path: Path) -> None:
    """A run the stage ended: the watchdog exits once nothing is open, marking nothing."""
    client = MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("ended")
    run_id = client.create_run(experiment).info.run_id
    watchdog = Watchdog(store, tmp_path)
    proc = watchdog.proc
    assert proc is not None
    watchdog.send("run", run_id)
    watchdog.send("end", run_id)  # nothing left open: the pipe closes, the watchdog exits
    assert watchdog.proc is None
    assert proc.wait(timeout=60) == 0
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"  # ended by nobody here, and not the watchdog's to mark
    assert "lottery.failure" not in run.data.tags
