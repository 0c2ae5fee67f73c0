"""Everything MLflow: where the store is, the study's parent run, one child run per network.

Conventions (design.md §5):
- Tracking URI: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<project root>/mlflow.db`,
  the project root resolved from `DVC_ROOT` so that `dvc exp run --temp/--queue` (which
  run in `.dvc/tmp/exps/...`) record into the same store.
- One experiment per study name; one parent run per study, found by the tag
  `lottery.study_hash`; one child run per (stage, trial, condition, repeat).
- Curves are logged with the iteration as `step`, in batches.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

from lottery.errors import UserError

TAG = "lottery."  # prefix of every tag this project sets
BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch call
MAX_PARAM_LEN = 6000


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used; the message says how to fix it."""


def project_root() -> Path:
    """The repository root, also inside `dvc exp run --temp` / `--queue` workspaces."""
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = root.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or f"sqlite:///{project_root() / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any training, when a remote tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status == 200:
                return
            problem = f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise TrackingError(
        f"cannot reach the MLflow tracking server at {uri} ({problem}). Start it "
        "(e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
        "sqlite:///mlflow-server.db`), or unset MLFLOW_TRACKING_URI to record into the "
        "local store. Nothing was trained or recorded."
    )


def git_revision(root: Path | None = None) -> str:
    """The commit checked out, with `-dirty` when tracked files differ from it."""
    cwd = root or project_root()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow params: `train.iterations` -> "5000"."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:MAX_PARAM_LEN]
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StudyRecorder:
    """The MLflow side of one stage: the study's parent run and the stage's child runs."""

    def __init__(self, experiment: str, study_hash: str, study_params: Mapping[str, Any]) -> None:
        self.uri = tracking_uri()
        check_reachable(self.uri)
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.study_hash = study_hash
        self.experiment_id = self._experiment(experiment)
        self.parent_id = self._parent_run(study_params)

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.uri.startswith("sqlite:"):  # artifacts beside the local store, never in a temp dir
            location = (project_root() / "mlruns").as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel stage
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def _find_parents(self) -> list[Any]:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG}study_hash` = '{self.study_hash}' "
            f"and tags.`{TAG}kind` = 'study'",
            order_by=["attributes.start_time ASC"],
        )
        return list(runs)

    def _parent_run(self, study_params: Mapping[str, Any]) -> str:
        found = self._find_parents()
        if found:
            return str(found[0].info.run_id)
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"study-{self.study_hash[:10]}",
            tags={f"{TAG}kind": "study", f"{TAG}study_hash": self.study_hash},
        )
        items = [Param(k, v) for k, v in flatten(study_params).items()]
        for i in range(0, len(items), 90):  # MLflow: at most 100 params per batch
            self.client.log_batch(run.info.run_id, params=items[i : i + 90])
        # The parent is a container, not a process: never left "running".
        self.client.set_terminated(run.info.run_id, status="FINISHED")
        # Parallel stages may have created a parent at the same moment: keep the oldest.
        found = self._find_parents()
        oldest = str(found[0].info.run_id)
        if oldest != run.info.run_id:
            self.client.delete_run(run.info.run_id)
        return oldest

    def fail_stale_runs(self, dvc_stage: str) -> list[str]:
        """Mark runs of this stage left RUNNING by a killed attempt as FAILED."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_id}' "
            f"and tags.`{TAG}dvc_stage` = '{dvc_stage}' and attributes.status = 'RUNNING'",
        )
        failed = []
        host = socket.gethostname()
        for run in runs:
            tags = run.data.tags
            pid = int(tags.get(f"{TAG}pid", "0") or 0)
            if tags.get(f"{TAG}host") == host and pid and _pid_alive(pid):
                continue  # a live attempt (e.g. a parallel experiment), leave it alone
            self.client.set_tag(run.info.run_id, f"{TAG}failure", "attempt was killed")
            self.client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(str(run.info.run_id))
        return failed

    def start_child(self, run_name: str, tags: Mapping[str, str]) -> str:
        all_tags = {
            "mlflow.parentRunId": self.parent_id,
            f"{TAG}host": socket.gethostname(),
            f"{TAG}pid": str(os.getpid()),
            **tags,
        }
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 90):  # MLflow: at most 100 params per batch
            self.client.log_batch(run_id, params=items[i : i + 90])

    def log_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_curves(self, run_id: str, curves: Mapping[str, Sequence[float]]) -> None:
        now = int(time.time() * 1000)
        steps = [int(s) for s in curves["iteration"]]
        metrics = [
            Metric(key, float(v), now, step)
            for key, values in curves.items()
            if key != "iteration"
            for step, v in zip(steps, values, strict=True)
        ]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + BATCH])

    def log_summary(self, run_id: str, summary: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, 0) for k, v in summary.items()]
        )

    def log_dataset(self, run_id: str, name: str, digest: str, source: str) -> None:
        ds = Dataset(name=name, digest=digest[:36], source_type="local", source=source)
        self.client.log_inputs(
            run_id,
            datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", "training")])],
        )

    def log_artifacts(self, run_id: str, files: Iterable[tuple[Path, str]]) -> None:
        for path, artifact_dir in files:
            self.client.log_artifact(run_id, str(path), artifact_dir or None)

    def end(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")

    def run_exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            return False
        return True
