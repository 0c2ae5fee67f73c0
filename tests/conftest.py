"""Shared fixtures: a real copy of the project in a temporary git repo, run with real DVC.

`make_project` copies the pipeline (dvc.yaml, stages/, lottery/, data/mnist, .dvc/config)
into a new git repository with tiny params; `run` calls the venv's tools there with
telemetry off and a local MLflow store. `tiny_study` is one completed `dvc repro`
shared by the tests that only read it (by every pytest-xdist worker of the session); a
test that changes files works on a copy (`copy_study`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from filelock import FileLock

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


#: Test files that run first, longest first, by path relative to tests/ (two packages may
#: each have a test_dvc.py). `make test` hands whole files to pytest-xdist workers in
#: collection order (`--dist loadscope --no-loadscope-reorder`): a long file that does not
#: need `tiny_study` (engine/test_engine.py) comes second, so a second worker has work while
#: the first builds the study. The reliability tests (a killed stage, parallel experiments,
#: the entry points, a DVC remote) come third. The rest follow in their usual order.
FIRST = [
    "audit/test_audit.py",
    "engine/test_engine.py",
    "study/test_interruption.py",
    "study/test_parallel.py",
    "test_entry_points.py",
    "study/test_remote.py",
    "engine/test_networks.py",
    "study/test_pipeline.py",
    "tracking/test_tracking.py",
    "engine/test_convnet.py",
    "bench/test_bench.py",
    "study/test_study.py",
]
TESTS = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """One XLA compilation cache (`lottery.engine.compile_cache`) for the session: its workers
    and every stage they run compile each program once. New for each session, so no test
    depends on what an earlier run left; a `LOTTERY_XLA_CACHE` of the caller's wins."""
    if "LOTTERY_XLA_CACHE" in os.environ or hasattr(config, "workerinput"):
        return
    cache = tempfile.mkdtemp(prefix="lottery-tests-xla-")
    os.environ["LOTTERY_XLA_CACHE"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.resolve()
        name = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items.sort(key=rank)


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
    """Apply `changes` to params.yaml and write dvc.yaml's round lists to match."""
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


def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test session's temporary directory, the same for all its pytest-xdist workers
    (each worker's own base directory is a child of it, `popen-gwN`)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="module")
def bare_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with tiny params in a git repo, never run (one per test module)."""
    return make_project(tmp_path_factory.mktemp("bare") / "project")


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed `dvc repro` of the real pipeline on tiny params (read-only: copy to edit).

    Built once per test session: under pytest-xdist the first worker to need it builds it
    while holding a file lock, and the others wait for it and share it. `repro.log`, written
    last, marks it complete; a half-built one (its builder failed) is built again.
    """
    shared = session_dir(tmp_path_factory) / "tiny"
    shared.mkdir(exist_ok=True)
    project = shared / "study"
    with FileLock(shared / "build.lock"):
        if not (project / "repro.log").exists():
            shutil.rmtree(project, ignore_errors=True)
            make_project(project)
            proc = run(project, "dvc", "repro")
            (project / "repro.log").write_text(proc.stdout + proc.stderr)
    return project


def copy_study(src: Path, dest: Path) -> Path:
    """An independent copy of a completed study (files, DVC cache, MLflow store, git).

    The copy's MLflow store points at the copy's own artifact folder: what a test logs or
    tampers with there can never reach `src`, which other tests (and other pytest-xdist
    workers) read at the same time. DVC's transient state (`.dvc/tmp`: its lock files, which
    a `dvc status` in `src` may be rewriting) is not copied; the copy's first command makes
    its own.
    """
    dvc_dir = src / ".dvc"

    def transient(folder: str, names: list[str]) -> set[str]:
        return {"tmp"} if Path(folder) == dvc_dir else set()

    shutil.copytree(src, dest, symlinks=True, ignore=transient)
    store = dest / "mlflow.db"
    if store.exists():
        old, new = str(src / "mlruns"), str(dest / "mlruns")
        con = sqlite3.connect(store)
        with con:
            con.execute(
                "UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                (old, new),
            )
            con.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
        con.close()
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


def start_mlflow_server(
    root: Path, port: int, workers: int, artifacts: Path, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """A real `mlflow server` on 127.0.0.1:`port`, its SQLite store in `root`, its job
    runner off, in a session of its own, writing to `log`."""
    cmd = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(artifacts),
    ]
    return subprocess.Popen(
        cmd,
        cwd=root,
        env=base_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


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
    with server.log.open("wb") as out:
        proc = start_mlflow_server(srv, port, 2, server.artifacts, out)
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
