"""How a recording process ends through `lottery.core.errors.guarded`, which finds this
package's modules through `sys.modules`: Ctrl-C marks the runs the process left open
FAILED with the reason (`recorder.explain_failure`), and an error of MLflow itself is one
line naming the store (`store.store_error_line`), not the bare fallback.

Each case is a real process recording into a real SQLite store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, base_env

#: A process that opens a study (experiment `sys.argv[1]`), starts a child run, prints its
#: id, then ends as `sys.argv[2]` says: "interrupt" (Ctrl-C) or "refused" (a request the
#: store refuses: a run that does not exist).
PROCESS = """
import sys
from lottery.core.errors import guarded
from lottery.tracking.recorder import StudyRecorder

def body():
    rec = StudyRecorder(sys.argv[1], "0" * 64, {"study": {"rounds": 1}})
    print(rec.start_child("probe", {"lottery.dvc_stage": "probe"}), flush=True)
    if sys.argv[2] == "interrupt":
        raise KeyboardInterrupt
    rec.client.get_run("0" * 32)

guarded(body, "the probe")
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a real SQLite store (its migrations run once for the module)."""
    path = tmp_path_factory.mktemp("recorder")
    MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}").search_experiments()
    return path


def record(root: Path, experiment: str, how: str) -> subprocess.CompletedProcess[str]:
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DVC_ROOT": str(root),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-c", PROCESS, experiment, how],
        cwd=root,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ctrl_c_marks_the_open_run_failed_as_interrupted(root: Path) -> None:
    proc = record(root, "interrupted", "interrupt")
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "interrupted: the probe stopped by Ctrl-C; 1 MLflow run(s) marked FAILED (interrupted)."
    )
    run = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").get_run(
        proc.stdout.split()[-1]
    )
    assert run.info.status == "FAILED"
    assert run.data.tags["lottery.failure"] == "interrupted"


def test_a_refused_request_is_one_line_naming_the_store(root: Path) -> None:
    proc = record(root, "refused", "refused")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    store = f"sqlite:///{root / 'mlflow.db'}"
    assert line.startswith(f"error: the MLflow store {store} refused a request: "), line
    run = MlflowClient(tracking_uri=store).get_run(proc.stdout.split()[-1])
    assert run.info.status == "FAILED"
    assert run.data.tags["lottery.failure"] == line  # the reason is the line printed
