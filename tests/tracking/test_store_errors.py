"""One `error:` line, never a traceback, for what goes wrong with the MLflow store or the
disk: a deleted experiment, a garbage, read-only or full mlflow.db, a mistyped or
unsupported MLFLOW_TRACKING_URI, a study name MLflow refuses, and a full disk (the line
names the file and its filesystem).

Each case runs a real stage-like process (`stage_main`, the stages' entry point) against
a real SQLite store. The read-only and full cases need a mount of their own: a read-only
bind mount or a small tmpfs inside `unshare --user --mount` (skipped where that is not
permitted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import ViewType

from lottery.tracking import recorder, store
from tests.conftest import ROOT, base_env, make_project

#: What a training stage does with the store: open it (experiment and parent run), start
#: a child run, log params of `sys.argv[1]` x 5 kB, end it.
RECORD = """
import sys
from lottery.tracking.recorder import StudyRecorder
from lottery.study.entry import stage_main

def stage(params):
    rec = StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    run_id = rec.start_child("probe", {"lottery.dvc_stage": "probe"})
    rec.log_params(run_id, {f"p{i}": "x" * 5000 for i in range(int(sys.argv[1]))})
    rec.end(run_id, True)

stage_main(stage)
"""

#: A stage that writes `sys.argv[2]` bytes to `sys.argv[1]` with the project's atomic write,
#: then copies that much into `sys.argv[3]` with shutil (as MLflow copies an artifact).
WRITE = """
import shutil, sys
from pathlib import Path
from lottery.core import io
from lottery.study.entry import stage_main

def stage(params):
    target, size = Path(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        src = Path(sys.argv[3])
        src.write_bytes(b"x" * size)
        shutil.copyfile(src, target)
    io.write_text(target, "x" * size)

stage_main(stage)
"""

UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


def can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        proc = subprocess.run(
            [*UNSHARE, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


needs_mount = pytest.mark.skipif(not can_mount(), reason="no mount namespace here")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("store-errors") / "project")


def stage(
    project: Path, code: str, *args: str, env: dict[str, str], shell: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `code` under `stage_main` in `project` (inside `shell`, a setup command run in
    its own mount namespace, when given)."""
    cmd = [sys.executable, "-c", code, *args]
    if shell is not None:
        cmd = [*UNSHARE, "sh", "-c", f'{shell} && exec "$@"', "sh", *cmd]
    return subprocess.run(
        cmd,
        cwd=project,
        env=base_env({"PYTHONPATH": str(ROOT), "DVC_ROOT": str(project), **env}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single `error:` line a failed stage printed (asserting that it is one)."""
    err = proc.stderr
    assert proc.returncode == code, err[-4000:]
    assert "Traceback" not in err, err[-4000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], err[-4000:]
    return errors[0]


def sqlite(path: Path) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{path}"}


def test_a_garbage_store(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(os.urandom(4096))
    line = one_line(stage(project, RECORD, "1", env=sqlite(db)))
    assert f"{db} is not an MLflow store (not an SQLite database)" in line
    assert f"mv {db} {db}.broken" in line


def test_a_deleted_experiment(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    name = str(yaml.safe_load((project / "params.yaml").read_text())["study"]["name"])
    exp = client.create_experiment(name, artifact_location=(tmp_path / "mlruns").as_uri())
    client.delete_experiment(exp)
    line = one_line(stage(project, RECORD, "1", env=sqlite(db)))
    assert f"the MLflow experiment {name!r} (study.name) is deleted" in line
    assert f"mlflow experiments restore --experiment-id {exp}" in line
    assert client.search_runs([exp], run_view_type=ViewType.ALL) == []  # nothing recorded


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("htp://127.0.0.1:5000", "not a tracking store (scheme 'htp')"),
        ("127.0.0.1:5000", "not a tracking store (no scheme"),
        ("file:///tmp/mlruns", "MLflow 3 no longer records into a directory of files"),
        ("sqlite:mlflow.db", "an SQLite store is sqlite:/// followed by its path"),
        ("postgresql://lottery@127.0.0.1/mlflow", "needs the Python module"),
    ],
)
def test_a_mistyped_or_unsupported_tracking_uri(project: Path, uri: str, expected: str) -> None:
    line = one_line(stage(project, RECORD, "1", env={"MLFLOW_TRACKING_URI": uri}))
    assert expected in line, line
    assert "unset MLFLOW_TRACKING_URI" in line or "install its driver" in line, line


def test_a_study_name_mlflow_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(store.TrackingError, match=r"study\.name is 501 characters long"):
        recorder.StudyRecorder("n" * 501, "0" * 64, {"study": {"rounds": 1}})


def make_store(project: Path, db: Path) -> None:
    """A store holding the study's experiment and parent, as after a first stage."""
    proc = stage(project, RECORD, "1", env=sqlite(db))
    assert proc.returncode == 0, proc.stderr[-3000:]


@needs_mount
def test_a_read_only_store(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    make_store(project, store / "mlflow.db")
    ro = f"mount --bind {store} {store} && mount -o remount,ro,bind {store}"
    line = one_line(stage(project, RECORD, "1", env=sqlite(store / "mlflow.db"), shell=ro))
    assert f"the MLflow store {store / 'mlflow.db'} is read-only" in line


@needs_mount
def test_a_full_store(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    make_store(project, store / "mlflow.db")
    size = (store / "mlflow.db").stat().st_size // 1024 + 256
    db = store / "mlflow.db"
    full = f"cp {db} /tmp/db && mount -t tmpfs -o size={size}k tmpfs {store} && cp /tmp/db {db}"
    line = one_line(stage(project, RECORD, "400", env=sqlite(db), shell=full))
    assert f"the MLflow store {db} cannot grow: filesystem {store}: " in line, line
    assert "free space there" in line


@needs_mount
def test_a_full_disk_names_the_file_and_its_filesystem(project: Path, tmp_path: Path) -> None:
    """A write that finds no room names what it was writing and where, with the fix;
    a copy names its destination, not its source."""
    disk = tmp_path / "disk"
    disk.mkdir()
    small = f"mount -t tmpfs -o size=256k tmpfs {disk}"
    target = disk / "metrics.json"
    line = one_line(stage(project, WRITE, str(target), "1000000", env={}, shell=small), code=1)
    assert line.startswith(f"error: {target}: No space left on device (filesystem {disk}: ")
    assert line.endswith("free space there and rerun"), line
    source = tmp_path / "source.bin"
    line = one_line(
        stage(project, WRITE, str(target), "1000000", str(source), env={}, shell=small), code=1
    )
    assert line.startswith(f"error: {target}: No space left on device (filesystem {disk}: ")
