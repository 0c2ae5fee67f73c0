"""Shared fixtures: a real copy of the project in a temporary git repo, run with real DVC.

`make_project` copies the pipeline (dvc.yaml, stages/, lottery/, data/mnist, .dvc/config)
into a new git repository with tiny params; `run` calls the venv's tools there with
telemetry off and a local MLflow store. `tiny_study` is one completed `dvc repro`
shared by the tests that only read it; a test that changes files copies it first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COPIED = [
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "presets",
    "stages",
    "lottery",
    "data/mnist",
    ".dvc/config",
    ".dvc/plots",
]

#: Tiny but real: 2 trials, 2 pruning rounds, 30 iterations evaluated every 10, both controls.
TINY: dict[str, Any] = {
    "study": {"trials": 2, "rounds": 2},
    "train": {"iterations": 30, "eval_every": 10},
    "controls": {"reinit": True, "random": True},
}


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run(
    project: Path,
    *cmd: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 1200,
) -> subprocess.CompletedProcess[str]:
    """Run a command in `project` (dvc, git, python, lottery) and capture its output."""
    proc = subprocess.run(
        list(cmd),
        cwd=project,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def deep_update(d: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in changes.items():
        if isinstance(v, Mapping):
            deep_update(d.setdefault(k, {}), v)
        else:
            d[k] = v
    return d


def write_params(project: Path, changes: Mapping[str, Any]) -> None:
    """Apply `changes` to params.yaml and regenerate its pipeline section."""
    from lottery.cli import set_rounds

    path = project / "params.yaml"
    params = deep_update(yaml.safe_load(path.read_text()), changes)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    set_rounds(path, None)


def make_project(dest: Path, changes: Mapping[str, Any] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in COPIED:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (dest / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    write_params(dest, deep_update(yaml.safe_load(yaml.safe_dump(TINY)), changes or {}))
    run(dest, "git", "init", "-q", "-b", "main")
    run(dest, "git", "config", "user.email", "test@example.com")
    run(dest, "git", "config", "user.name", "lottery tests")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-q", "-m", "tiny study")
    return dest


def ran_stages(output: str) -> list[str]:
    """Stage names `dvc repro` actually executed (not skipped or restored)."""
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed `dvc repro` of the real pipeline on tiny params (read-only: copy to edit)."""
    project = make_project(tmp_path_factory.mktemp("tiny") / "study")
    proc = run(project, "dvc", "repro")
    (project / "repro.log").write_text(proc.stdout + proc.stderr)
    return project


def copy_study(src: Path, dest: Path) -> Path:
    """An independent copy of a completed study (files, DVC cache, MLflow store, git)."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


# ---------------------------------------------------------------- a real MLflow server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MlflowServer:
    url: str
    log: Path
    artifacts: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend, served artifacts), started once
    and shared by the tests that need one (each records under its own experiment name);
    stopped at the end of the session.

    Its job runner is off (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false): the project runs no
    server-side jobs (GenAI evaluation, trace rollups), and the runner's extra worker
    processes would only take CPU from the stages under test.
    """
    srv = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = MlflowServer(f"http://127.0.0.1:{port}", srv / "server.log", srv / "artifacts")
    cmd = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--backend-store-uri",
        f"sqlite:///{srv / 'mlflow.db'}",
        "--artifacts-destination",
        str(server.artifacts),
    ]
    with server.log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=srv,
            env=base_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(server.url + "/health", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = server.log.read_text()[-3000:]
                    raise AssertionError(f"mlflow server did not start:\n{tail}")
                time.sleep(0.5)
            yield server
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
