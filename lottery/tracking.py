"""Everything MLflow: where the store is, the study's parent run, one child run per network.

Conventions:
- Tracking URI: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<project root>/mlflow.db`,
  the project root resolved from `DVC_ROOT` so that `dvc exp run --temp/--queue` (which
  run in `.dvc/tmp/exps/...`) record into the same store.
- One experiment per study name; one parent run per study, found by the tag
  `lottery.study_hash`; one child run per (stage, trial, condition, repeat).
- Curves are logged with the iteration as `step`, in batches.
- Every run names the process that owns it (`lottery.host`, `.pid`, `.pid_start`): a
  RUNNING run whose process is gone is an orphan: the stage's watchdog, every later
  stage that opens the store and `lottery audit --repair` mark it FAILED with the reason
  in `lottery.failure` (README "Scaling out and reliability").
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
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
from lottery.io import find_root
from lottery.lineage import TAG  # prefix of every tag this project sets

MAX_PARAM_LEN = 6000


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used; the message says how to fix it."""


def project_root() -> Path:
    """The repository root, also inside `dvc exp run --temp` / `--queue` workspaces and from
    any subdirectory (the nearest directory above holding `.dvc/` and `dvc.yaml`)."""
    start = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    return find_root(start) or start


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or f"sqlite:///{project_root() / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any training, when a remote tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 http(s) only
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


# ---------------------------------------------------------------- who owns a run

FAILURE_TAG = f"{TAG}failure"  # why a run is FAILED, in words


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), None if unknown.

    With the pid it names one process for good: a pid reused by a later process has
    another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner_tags() -> dict[str, str]:
    """Tags naming the process that owns a run: `lottery.host`, `.pid`, `.pid_start`."""
    tags = {f"{TAG}host": socket.gethostname(), f"{TAG}pid": str(os.getpid())}
    start = process_start(os.getpid())
    if start is not None:
        tags[f"{TAG}pid_start"] = start
    return tags


def owner_state(tags: Mapping[str, str]) -> str:
    """ "alive", "gone" or "elsewhere" (another host: cannot be checked from here)."""
    try:
        pid = int(tags.get(f"{TAG}pid", "0") or 0)
    except ValueError:
        pid = 0
    if tags.get(f"{TAG}host") != socket.gethostname():
        return "elsewhere"
    if pid <= 0 or not _pid_alive(pid):
        return "gone"
    recorded = tags.get(f"{TAG}pid_start")
    if recorded is not None and process_start(pid) not in (None, recorded):
        return "gone"  # the pid now belongs to another process
    return "alive"


def running_runs(client: MlflowClient) -> list[Any]:
    """Every RUNNING run this project made (it has an owner pid tag), in every experiment."""
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    runs = client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=5000)
    return [r for r in runs if f"{TAG}pid" in r.data.tags]


def orphan_reason(run: Any, found_by: str) -> str:
    tags = run.data.tags
    return (
        f"orphaned: its process (pid {tags.get(f'{TAG}pid')} on "
        f"{tags.get(f'{TAG}host')}) ended without finishing the run, e.g. killed; "
        f"marked FAILED by {found_by}"
    )


def mark_failed(client: MlflowClient, run_id: str, reason: str) -> None:
    """Status FAILED with the reason in the tag `lottery.failure`."""
    client.set_tag(run_id, FAILURE_TAG, reason[:MAX_PARAM_LEN])
    client.set_terminated(run_id, status="FAILED")


def fail_orphans(client: MlflowClient, found_by: str) -> list[str]:
    """Mark FAILED every RUNNING run whose owning process on this host is gone."""
    failed = []
    for run in running_runs(client):
        if owner_state(run.data.tags) == "gone":
            mark_failed(client, run.info.run_id, orphan_reason(run, found_by))
            failed.append(str(run.info.run_id))
    return failed


# The runs this process started and did not finish, for the entry point to explain.
_OWN: dict[str, MlflowClient] = {}


def explain_failure(reason: str) -> list[str]:
    """Mark every run this process started and did not finish FAILED, with `reason`.

    Called by the stage entry point on Ctrl-C ("interrupted"), SIGTERM and errors; a run
    the stage already ended FAILED gets the reason tag. Returns the run ids marked."""
    done = []
    for run_id, client in list(_OWN.items()):
        try:
            run = client.get_run(run_id)
            if run.info.status != "FINISHED" and FAILURE_TAG not in run.data.tags:
                mark_failed(client, run_id, reason)
                done.append(run_id)
        except Exception:  # noqa: S112 store gone too: the watchdog or a later sweep marks it
            continue
        finally:
            _OWN.pop(run_id, None)
    for watchdog in list(_WATCHDOGS):
        for run_id in done:
            watchdog.send("end", run_id)
        watchdog.close()
    return done


# A watchdog outlives a stage killed outright (SIGKILL, even of its whole process group):
# it holds the read end of a pipe whose write end only the stage holds. The stage sends
# "run ID" when it starts a run and "end ID" when it ends one; end of file with runs not
# ended means the stage died, and the watchdog marks them FAILED. It imports MLflow only
# then, so a stage that ends normally costs one idle Python process.
_WATCHDOG_CODE = """
import os, socket, sys
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
uri, pid = sys.argv[1], sys.argv[2]
open_runs = []
for line in sys.stdin:
    word, _, run_id = line.strip().partition(" ")
    if word == "run":
        open_runs.append(run_id)
    elif word == "end" and run_id in open_runs:
        open_runs.remove(run_id)
if open_runs:
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    reason = (f"killed: its stage process (pid {pid} on {socket.gethostname()}) died "
              "before finishing the run; marked FAILED by its watchdog")
    for run_id in open_runs:
        try:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_tag(run_id, "lottery.failure", reason)
                client.set_terminated(run_id, status="FAILED")
        except Exception:
            pass
"""


class Watchdog:
    """The separate process that marks this stage's runs FAILED if the stage dies."""

    def __init__(self, uri: str) -> None:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG_CODE, uri, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives a kill of the stage's process group
            cwd=str(project_root()),
            env=env,
        )
        self.open: set[str] = set()
        _WATCHDOGS.append(self)

    def send(self, word: str, run_id: str) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(f"{word} {run_id}\n".encode())
            self.proc.stdin.flush()
        except OSError:  # the watchdog itself was killed: later stages still sweep
            self.proc = None
            return
        if word == "run":
            self.open.add(run_id)
        else:
            self.open.discard(run_id)
            if not self.open:
                self.close()  # nothing left to watch: it exits without importing MLflow

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self in _WATCHDOGS:
            _WATCHDOGS.remove(self)


_WATCHDOGS: list[Watchdog] = []


def context_tags() -> dict[str, str]:
    """MLflow's standard context tags (mlflow.user, mlflow.source.name/type, and
    mlflow.source.git.commit inside a git checkout), as `mlflow.start_run` sets them."""
    from mlflow.tracking.context.registry import resolve_tags

    return {k: str(v) for k, v in resolve_tags().items()}


class LiveCurves:
    """Learning curves logged while training runs: each evaluation's values carry the
    time they were measured, and are sent every `every_s` seconds and at `close`."""

    def __init__(self, client: MlflowClient, run_ids: Sequence[str], every_s: float) -> None:
        self.client, self.run_ids, self.every_s = client, list(run_ids), every_s
        self.pending: dict[str, list[Metric]] = {}
        self.sent = time.monotonic()

    def __call__(self, iteration: int, rows: Mapping[int, Mapping[str, float]]) -> None:
        now = int(time.time() * 1000)
        for k, values in rows.items():
            self.pending.setdefault(self.run_ids[k], []).extend(
                Metric(key, float(v), now, int(iteration)) for key, v in values.items()
            )
        if time.monotonic() - self.sent >= self.every_s:
            self.flush()

    def flush(self) -> None:
        for run_id, metrics in self.pending.items():
            if metrics:
                self.client.log_batch(run_id, metrics=metrics)  # chunked by MLflow itself
        self.pending, self.sent = {}, time.monotonic()


def log_inputs(client: MlflowClient, run_id: str, inputs: list[DatasetInput]) -> None:
    """`client.log_inputs`, tried up to 3 times.

    The store inserts a dataset it has not seen, so two stages that log the same dataset
    at the same moment race on its unique key and one gets an error. The insert is one
    transaction: trying again finds the other's row and links to it.
    """
    for attempt in range(3):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except mlflow.exceptions.MlflowException:
            if attempt == 2:
                raise
            time.sleep(0.5 * (attempt + 1))


class StudyRecorder:
    """The MLflow side of one stage: the study's parent run and the stage's child runs."""

    def __init__(self, experiment: str, study_hash: str, study_params: Mapping[str, Any]) -> None:
        self.uri = tracking_uri()
        check_reachable(self.uri)
        # An explicit client, no mlflow.set_tracking_uri: that also sets the process's
        # MLFLOW_TRACKING_URI, which would send a later study in the same process (a
        # notebook, a test) to this one's store.
        self.client = MlflowClient(tracking_uri=self.uri)
        self.study_hash = study_hash
        self.watchdog: Watchdog | None = None
        self.experiment_id = self._experiment(experiment)
        self.parent_id = self._parent_run(study_params)
        # Every stage that records (training, report) sweeps orphans as it opens the store.
        stage = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).name
        self.swept = fail_orphans(self.client, f"stage {stage} (pid {os.getpid()})")

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
            tags={**context_tags(), f"{TAG}kind": "study", f"{TAG}study_hash": self.study_hash},
        )
        params = [Param(k, v) for k, v in flatten(study_params).items()]
        self.client.log_batch(run.info.run_id, params=params)
        # The parent is a container, not a process: never left "running".
        self.client.set_terminated(run.info.run_id, status="FINISHED")
        # Parallel stages may have created a parent at the same moment: keep the oldest.
        found = self._find_parents()
        oldest = str(found[0].info.run_id)
        if oldest != run.info.run_id:
            self.client.delete_run(run.info.run_id)
        return oldest

    def fail_stale_runs(self, dvc_stage: str) -> list[str]:
        """Mark FAILED every RUNNING run of this store whose process is gone.

        Not only this stage's and this study's: an attempt killed before a params change,
        or one whose stage DVC later restored from its cache, is found here too. Runs of
        live processes (a parallel experiment) and of other hosts are left alone. The
        recorder already swept once when it opened the store: those runs are included."""
        swept, self.swept = self.swept, []
        return swept + fail_orphans(self.client, f"stage {dvc_stage} (pid {os.getpid()})")

    def start_child(self, run_name: str, tags: Mapping[str, str]) -> str:
        all_tags = {
            **context_tags(),
            "mlflow.parentRunId": self.parent_id,
            **owner_tags(),
            **tags,
        }
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        run_id = str(run.info.run_id)
        _OWN[run_id] = self.client
        if self.watchdog is None or self.watchdog.proc is None:
            self.watchdog = Watchdog(self.uri)
        self.watchdog.send("run", run_id)
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])

    def log_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def live_curves(self, run_ids: Sequence[str], every_s: float = 5.0) -> LiveCurves:
        """A callback for `Engine.train(on_evaluation=...)`: network k's curves go to run
        `run_ids[k]` while it trains."""
        return LiveCurves(self.client, run_ids, every_s)

    def log_summary(self, run_id: str, summary: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, 0) for k, v in summary.items()]
        )

    def log_dataset(self, run_id: str, name: str, digest: str, source: str) -> None:
        ds = Dataset(name=name, digest=digest[:36], source_type="local", source=source)
        inputs = [DatasetInput(ds, tags=[InputTag("mlflow.data.context", "training")])]
        log_inputs(self.client, run_id, inputs)

    def log_artifacts(self, run_id: str, files: Iterable[tuple[Path, str]]) -> None:
        for path, artifact_dir in files:
            self.client.log_artifact(run_id, str(path), artifact_dir or None)

    def end(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")
        if ok:
            _OWN.pop(run_id, None)  # a failed run waits for its reason (explain_failure)
        if self.watchdog is not None:
            self.watchdog.send("end", run_id)
