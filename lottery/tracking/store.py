"""Everything MLflow: where the store is, the study's parent run, one child run per network.

Conventions:
- Tracking URI: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<project root>/mlflow.db`,
  the project root resolved from `DVC_ROOT` so that `dvc exp run --temp/--queue` (which
  run in `.dvc/tmp/exps/...`) record into the same store.
- One experiment per study name; one parent run per study, named after the study (and the
  DVC experiment, tag `lottery.dvc_exp_name`), found by the tag `lottery.study_key`: the
  hash of every param but the study's name and its number of rounds, so a study whose
  rounds grow keeps its parent. One child run per (stage, trial, condition, repeat).
- Curves are logged with the iteration as `step`, in batches, while training runs. A
  tracking server that stops answering does not stop training: the curves wait in memory
  and every call waits out an outage of up to `OUTAGE_S` seconds before it fails.
- Every MLflow or database failure is a `TrackingError`: one line naming the store and
  the fix (`store_problem`).
- Every run names the process that owns it (`lottery.host`, `.boot_id`, `.pid_ns`, `.pid`,
  `.pid_start`): a RUNNING run whose process is gone is an orphan: the stage's watchdog,
  every later stage that opens the store and `lottery audit --repair` mark it FAILED with
  the reason in `lottery.failure` (README "Scaling out and reliability"). A run of another
  machine, boot or PID namespace is never marked: its process cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Each call gives up after MLflow's own 2 retries (seconds); `patiently` then waits out
# the rest of an outage, up to OUTAGE_S, with a line saying so.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

from lottery.core.errors import UserError, describe_size
from lottery.core.io import find_root
from lottery.core.lineage import TAG  # prefix of every tag this project sets

MAX_PARAM_LEN = 6000
MAX_EXPERIMENT_NAME = 500  # MLflow's limit on an experiment name (study.name)
MAX_RUN_NAME = 250

#: How long a call waits for a tracking store that stopped answering (a server restart,
#: a dropped tunnel) before the stage fails with one line. Curves logged during training
#: wait in memory meanwhile.
OUTAGE_S = 120.0

T = TypeVar("T")


class _DropTraceback(logging.Filter):
    """MLflow's SQL store logs the traceback of every database error it re-raises; the
    stage reports the error in one line (`store_problem`), so the log entry is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


logging.getLogger("mlflow.store.db.utils").addFilter(_DropTraceback())


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


#: URI schemes of the tracking stores a stage can record into (a `+driver` suffix aside).
STORE_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")
_URI_FIX = (
    "Use http://HOST:PORT (an `mlflow server`, docs/scaling.md) or "
    "sqlite:////absolute/path/mlflow.db, or unset MLFLOW_TRACKING_URI to record into the "
    "project's mlflow.db."
)


def check_uri(uri: str) -> None:
    """A `TrackingError` naming the fix when `uri` is no tracking store MLflow can use."""
    scheme = uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith("sqlite:") else ""
    if scheme.split("+")[0] not in STORE_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        if scheme == "file" or not scheme:
            shown += ": MLflow 3 no longer records into a directory of files"
        raise TrackingError(
            f"MLFLOW_TRACKING_URI is {uri!r}, not a tracking store ({shown}). {_URI_FIX}"
        )
    if scheme == "sqlite" and not uri.startswith("sqlite:///"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI is {uri!r}: an SQLite store is sqlite:/// followed by "
            f"its path (four slashes for an absolute path). {_URI_FIX}"
        )


def store_path(uri: str) -> Path | None:
    """The database file of an SQLite store, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri[len("sqlite:///") :].split("?")[0]))


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, outermost first."""
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not seen for seen in out):
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def transient(exc: BaseException) -> bool:
    """Whether `exc` says the store did not answer (connection refused or dropped, a
    timeout, a 5xx after MLflow's retries, an SQLite file locked by another writer): worth
    calling again, not a wrong request."""
    import requests

    for e in _chain(exc):
        if isinstance(
            e,
            (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.RetryError,
                requests.exceptions.ChunkedEncodingError,
            ),
        ):
            return True
        if isinstance(e, requests.exceptions.HTTPError):
            response = e.response
            return response is not None and response.status_code >= 500
        if "database is locked" in _first_line(e):
            return True
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlite_problem(text: str, where: str, uri: str, exc: BaseException) -> str | None:
    """The line for a store error whose text (lower case, the whole chain) names an SQLite
    condition; None when it names none."""
    other = "or point MLFLOW_TRACKING_URI at another store"
    cases = (
        (
            ("readonly database", "read-only file system"),
            f"the MLflow store {where} is read-only (SQLite: attempt to write a readonly "
            f"database): make the file and its directory writable, {other}.",
        ),
        (
            ("database or disk is full", "no space left"),
            f"the MLflow store {where} cannot grow: {{size}}; free space there, {other}.",
        ),
        (
            ("file is not a database", "file is encrypted"),
            f"{where} is not an MLflow store (not an SQLite database): move it aside "
            f"(`mv {where} {where}.broken`) and rerun to start a new store, {other}.",
        ),
        (
            ("unable to open database file",),
            f"cannot open the MLflow store {where}: its directory must exist and be "
            f"writable; fix that, {other}.",
        ),
        (
            ("disk i/o error",),
            f"the MLflow store {where}: disk I/O error ({{size}}); the disk is full or "
            f"failing, or SQLite cannot lock files there (some network filesystems): fix "
            f"that, {other}.",
        ),
        (
            ("database is locked",),
            f"the MLflow store {where} stayed locked by another process: parallel stages "
            "must share an `mlflow server`, not one SQLite file (docs/scaling.md).",
        ),
        (
            ("out-of-date database schema", "no such table"),
            f"{where} is not an MLflow store of this MLflow version ({{first}}): back it up "
            f"and run `mlflow db upgrade {uri}`, {other}.",
        ),
    )
    for needles, template in cases:
        if any(n in text for n in needles):
            size = describe_size(where) if "{size}" in template else ""
            return template.replace("{size}", size).replace("{first}", _first_line(exc)[:200])
    return None


def store_problem(exc: BaseException, uri: str) -> str | None:
    """One line naming what is wrong with the tracking store at `uri` and the fix, for the
    errors a store itself causes (unusable database file, missing driver, a URL that does
    not parse); None for errors of a request (the caller's business)."""
    chain = _chain(exc)
    names = {f"{type(e).__module__}.{type(e).__name__}" for e in chain}
    if any(n.endswith("IntegrityError") for n in names):
        return None  # a unique key raced by a parallel writer: the caller retries
    text = " ".join(_first_line(e) for e in chain).lower()
    db = store_path(uri)
    where = str(db) if db is not None else uri
    line = _sqlite_problem(text, where, uri, exc)
    if line is not None:
        return line
    for e in chain:
        if isinstance(e, ModuleNotFoundError):
            return (
                f"MLFLOW_TRACKING_URI={uri} needs the Python module {e.name!r}, which this "
                f"environment lacks: install its driver into .venv. {_URI_FIX}"
            )
    if any(n.startswith("sqlalchemy.exc.ArgumentError") for n in names) or any(
        "unsupported uri" in _first_line(e).lower()
        or "could not find a registered tracking store" in _first_line(e).lower()
        for e in chain
    ):
        return f"MLFLOW_TRACKING_URI is {uri!r}, which MLflow cannot open. {_URI_FIX}"
    return None


def store_error_line(exc: BaseException, uri: str | None = None) -> str:
    """Any error of MLflow or its database as one line (the stage entry point's last
    resort, `lottery.errors.guarded`): the store's problem and fix when known."""
    uri = uri or tracking_uri()
    known = store_problem(exc, uri)
    if known is not None:
        return known
    if transient(exc):
        return (
            f"the MLflow tracking store at {uri} does not answer ({_first_line(exc)[:200]}): "
            "start it (or the SSH tunnel to it) and rerun."
        )
    return f"the MLflow store {uri} refused a request: {_first_line(exc)[:300]}"


def _raise_store_problem(exc: BaseException, uri: str) -> None:
    """Raise `exc` as a `TrackingError` when it is the store's fault (`store_problem`)."""
    msg = store_problem(exc, uri)
    if msg is not None:
        raise TrackingError(msg) from None


def open_client(uri: str) -> MlflowClient:
    """An MLflow client of the store at `uri` (SQLite: opened, created or migrated now)."""
    check_uri(uri)
    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as exc:
        _raise_store_problem(exc, uri)
        raise


def _answers(uri: str, timeout: float = 2.0) -> bool:
    """Whether a tracking server answers its /health now (any other store: True)."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _note(msg: str) -> None:
    print(f"MLflow: {msg}", file=sys.stderr, flush=True)


def patiently(uri: str, call: Callable[[], T], what: str) -> T:
    """`call()`, again and again while the store at `uri` does not answer, for up to
    `OUTAGE_S` seconds; the store's own failures as one-line `TrackingError`s."""
    began: float | None = None
    delay = 1.0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not transient(exc):
                _raise_store_problem(exc, uri)
                raise
            now = time.monotonic()
            if began is None:
                began = now
                _note(
                    f"the tracking store at {uri} does not answer ({_first_line(exc)[:160]}); "
                    f"trying again for up to {OUTAGE_S:.0f} s"
                )
            if now - began >= OUTAGE_S:
                _raise_store_problem(exc, uri)  # an SQLite file locked all along
                raise TrackingError(
                    f"the MLflow tracking store at {uri} has not answered for "
                    f"{now - began:.0f} s ({what}: {_first_line(exc)[:200]}). Restart it "
                    "(or the SSH tunnel to it), then rerun `dvc repro`: the outputs of "
                    "finished stages are kept."
                ) from None
            time.sleep(min(delay, max(0.0, OUTAGE_S - (now - began))))
            delay = min(delay * 2, 10.0)
            continue
        if began is not None:
            waited = time.monotonic() - began
            _note(f"the tracking store at {uri} answers again after {waited:.0f} s")
        return result


class PatientClient:
    """An `MlflowClient` whose every call goes through `patiently`."""

    def __init__(self, client: MlflowClient, uri: str) -> None:
        self.raw, self.uri = client, uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return patiently(self.uri, lambda: attr(*args, **kwargs), name)

        return call


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


def boot_id() -> str | None:
    """This boot of this machine (Linux: a random id drawn at boot), None if unknown.

    Two machines with the same hostname, or this one before a reboot, have another."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def pid_namespace() -> str | None:
    """The PID namespace this process's pid means something in (`pid:[4026531836]`), None
    if unknown. A container or `unshare --pid` has its own: its pid 7 is not ours."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


#: The tags that name where a run's process lives, beyond the host name, and how to read
#: this process's value of each.
_WHERE: dict[str, Callable[[], str | None]] = {
    f"{TAG}boot_id": boot_id,
    f"{TAG}pid_ns": pid_namespace,
}


def owner_tags() -> dict[str, str]:
    """Tags naming the process that owns a run: `lottery.host`, `.boot_id`, `.pid_ns`,
    `.pid`, `.pid_start`."""
    tags = {f"{TAG}host": socket.gethostname(), f"{TAG}pid": str(os.getpid())}
    for tag, read in _WHERE.items():
        value = read()
        if value is not None:
            tags[tag] = value
    start = process_start(os.getpid())
    if start is not None:
        tags[f"{TAG}pid_start"] = start
    return tags


def owner_state(tags: Mapping[str, str]) -> str:
    """ "alive", "gone" or "elsewhere": another host, another boot (a machine of the same
    name, or this one before a reboot) or another PID namespace, which cannot be checked
    from here. Runs recorded before a tag existed are judged by the tags they have."""
    try:
        pid = int(tags.get(f"{TAG}pid", "0") or 0)
    except ValueError:
        pid = 0
    if tags.get(f"{TAG}host") != socket.gethostname():
        return "elsewhere"
    for tag, read in _WHERE.items():
        recorded, here = tags.get(tag), read()
        if recorded and here and recorded != here:
            return "elsewhere"
    if pid <= 0 or not _pid_alive(pid):
        return "gone"
    recorded = tags.get(f"{TAG}pid_start")
    if recorded is not None and process_start(pid) not in (None, recorded):
        return "gone"  # the pid now belongs to another process
    return "alive"


def running_runs(client: MlflowClient | PatientClient) -> list[Any]:
    """Every RUNNING run this project made (it has an owner pid tag), in every experiment."""
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    runs = client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=5000)
    return [r for r in runs if f"{TAG}pid" in r.data.tags]


def where(tags: Mapping[str, str]) -> str:
    """Where a run's process lives, in words, for a run this host cannot check."""
    host = tags.get(f"{TAG}host")
    if host != socket.gethostname():
        return f"host {host}"
    if (recorded := tags.get(f"{TAG}boot_id")) and recorded != boot_id():
        return f"host {host}, another boot (a machine of that name, or this one before a reboot)"
    return f"host {host}, another PID namespace (a container, `unshare --pid`)"


def orphan_reason(run: Any, found_by: str) -> str:
    tags = run.data.tags
    return (
        f"orphaned: its process (pid {tags.get(f'{TAG}pid')} on "
        f"{tags.get(f'{TAG}host')}) ended without finishing the run, e.g. killed; "
        f"marked FAILED by {found_by}"
    )


def mark_failed(client: MlflowClient | PatientClient, run_id: str, reason: str) -> None:
    """Status FAILED with the reason in the tag `lottery.failure`."""
    client.set_tag(run_id, FAILURE_TAG, reason[:MAX_PARAM_LEN])
    client.set_terminated(run_id, status="FAILED")


def fail_orphans(client: MlflowClient | PatientClient, found_by: str) -> list[str]:
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
    unreachable = False
    for run_id, client in list(_OWN.items()):
        _OWN.pop(run_id, None)
        if unreachable:  # one store, not answering: the watchdog or a later sweep marks them
            continue
        try:
            run = client.get_run(run_id)
            if run.info.status != "FINISHED" and FAILURE_TAG not in run.data.tags:
                mark_failed(client, run_id, reason)
                done.append(run_id)
        except Exception as exc:  # store gone too: the watchdog or a later sweep marks it
            unreachable = transient(exc)
            continue
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
    time they were measured, and are sent every `every_s` seconds and at `close`.

    A store that does not answer never stops training: what could not be sent stays in
    memory and goes with a later send (tried again after 2, 4, ... up to 30 s, when the
    server's /health answers), and `flush` at the end of training waits out the rest of
    an outage (`patiently`). Values keep their timestamps, so a batch sent twice (its
    answer lost) is stored once."""

    def __init__(
        self, client: MlflowClient, run_ids: Sequence[str], every_s: float, uri: str = ""
    ) -> None:
        self.client, self.run_ids, self.every_s = client, list(run_ids), every_s
        inner = getattr(client, "_tracking_client", None)
        self.uri = uri or str(getattr(inner, "tracking_uri", "") or "")
        self.pending: dict[str, list[Metric]] = {}
        self.sent = time.monotonic()
        self.failures = 0
        self.retry_at = 0.0

    def __call__(self, iteration: int, rows: Mapping[int, Mapping[str, float]]) -> None:
        now = int(time.time() * 1000)
        for k, values in rows.items():
            self.pending.setdefault(self.run_ids[k], []).extend(
                Metric(key, float(v), now, int(iteration)) for key, v in values.items()
            )
        clock = time.monotonic()
        if clock - self.sent >= self.every_s and clock >= self.retry_at:
            self._send(final=False)

    def buffered(self) -> int:
        """How many values wait to be sent."""
        return sum(len(m) for m in self.pending.values())

    def flush(self) -> None:
        """Send everything (at the end of training): waits out an outage of the store."""
        self._send(final=True)

    def _send(self, final: bool) -> None:
        if self.failures and not final and not _answers(self.uri):
            self._defer(None)
            return
        for run_id in list(self.pending):
            metrics = self.pending[run_id]
            if metrics:
                batch = metrics

                def send(run_id: str = run_id, batch: list[Metric] = batch) -> None:
                    self.client.log_batch(run_id, metrics=batch)  # chunked by MLflow itself

                try:
                    if final:
                        patiently(self.uri, send, "sending the learning curves")
                    else:
                        send()
                except Exception as exc:
                    if final or not transient(exc):
                        _raise_store_problem(exc, self.uri)
                        raise
                    self._defer(exc)
                    return
            del self.pending[run_id]
        if self.failures:
            _note(f"the tracking store at {self.uri} answers again; the buffered curves were sent")
        self.failures, self.retry_at, self.sent = 0, 0.0, time.monotonic()

    def _defer(self, exc: Exception | None) -> None:
        """A send that found the store not answering: keep the values, try again later."""
        if not self.failures and exc is not None:
            _note(
                f"the tracking store at {self.uri} does not answer ({_first_line(exc)[:160]}); "
                "training goes on and the curves wait in memory until it does"
            )
        self.failures += 1
        self.retry_at = time.monotonic() + min(2.0 * 2 ** (self.failures - 1), 30.0)


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


def study_key(study_params: Mapping[str, Any]) -> str:
    """What finds a study's parent run: the hash of every param but the study's name and
    how many rounds it runs (`study.rounds` and the generated `pipeline`), so that a study
    whose rounds grow (`lottery rounds N`) stays under one parent."""
    d = {k: v for k, v in study_params.items() if k != "pipeline"}
    study = d.get("study")
    if isinstance(study, Mapping):
        d["study"] = {k: v for k, v in study.items() if k not in ("name", "rounds")}
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def parent_name(study: str, exp_name: str | None) -> str:
    """The parent run's name: the study's, and the DVC experiment's when it has one."""
    name = f"{study} ({exp_name})" if exp_name else study
    return name[:MAX_RUN_NAME]


def _parent_params(study_params: Mapping[str, Any]) -> dict[str, str]:
    """The params a parent logs once: all but those that change as its rounds grow
    (those are the tag `lottery.rounds`)."""
    flat = flatten(study_params)
    return {k: v for k, v in flat.items() if not k.startswith("pipeline.") and k != "study.rounds"}


class StudyRecorder:
    """The MLflow side of one stage: the study's parent run and the stage's child runs.

    Every call waits out an outage of the store (`PatientClient`); what the store itself
    refuses is a one-line `TrackingError`."""

    def __init__(self, experiment: str, study_hash: str, study_params: Mapping[str, Any]) -> None:
        self.uri = tracking_uri()
        check_uri(self.uri)
        check_reachable(self.uri)
        # An explicit client, no mlflow.set_tracking_uri: that also sets the process's
        # MLFLOW_TRACKING_URI, which would send a later study in the same process (a
        # notebook, a test) to this one's store.
        self.raw = open_client(self.uri)
        self.client: Any = PatientClient(self.raw, self.uri)  # an MlflowClient in all but type
        self.study_hash = study_hash
        self.study_key = study_key(study_params)
        self.exp_name = os.environ.get("DVC_EXP_NAME") or None
        self.watchdog: Watchdog | None = None
        self.experiment_id = self._experiment(experiment)
        self.parent_id = self._parent_run(experiment, study_params)
        # Every stage that records (training, report) sweeps orphans as it opens the store.
        stage = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).name
        self.swept = fail_orphans(self.client, f"stage {stage} (pid {os.getpid()})")

    def _experiment(self, name: str) -> str:
        if len(name) > MAX_EXPERIMENT_NAME:
            raise TrackingError(
                f"study.name is {len(name)} characters long; it names the MLflow experiment, "
                f"which holds at most {MAX_EXPERIMENT_NAME}: shorten it in params.yaml."
            )
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage != "active":
                raise TrackingError(
                    f"the MLflow experiment {name!r} (study.name) is deleted in {self.uri}: "
                    f"restore it with `MLFLOW_TRACKING_URI={self.uri} mlflow experiments "
                    f"restore --experiment-id {exp.experiment_id}`, or set another study.name "
                    "in params.yaml. Nothing was recorded."
                )
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

    def _find_parents(self, tag: str, value: str) -> list[Any]:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG}{tag}` = '{value}' and tags.`{TAG}kind` = 'study'",
            order_by=["attributes.start_time ASC"],
        )
        return list(runs)

    def _parent_run(self, study: str, study_params: Mapping[str, Any]) -> str:
        """The study's parent run (created with its params when there is none), named and
        tagged for the stage recording now."""
        found = self._find_parents("study_key", self.study_key)
        if not found:  # a parent of earlier code, found by the hash of all params
            found = self._find_parents("study_hash", self.study_hash)
        if found:
            self._update_parent(found[0], study, study_params)
            return str(found[0].info.run_id)
        tags = {
            **context_tags(),
            f"{TAG}kind": "study",
            **self._parent_tags(study_params),
        }
        run = self.client.create_run(
            self.experiment_id, run_name=parent_name(study, self.exp_name), tags=tags
        )
        params = [Param(k, v) for k, v in _parent_params(study_params).items()]
        self.client.log_batch(run.info.run_id, params=params)
        # The parent is a container, not a process: never left "running".
        self.client.set_terminated(run.info.run_id, status="FINISHED")
        # Parallel stages may have created a parent at the same moment: keep the oldest.
        found = self._find_parents("study_key", self.study_key)
        oldest = str(found[0].info.run_id)
        if oldest != run.info.run_id:
            self.client.delete_run(run.info.run_id)
        return oldest

    def _parent_tags(self, study_params: Mapping[str, Any]) -> dict[str, str]:
        """The parent's tags that follow the study: its key, the hash of its latest params,
        its number of rounds, and the DVC experiment that recorded into it last."""
        tags = {f"{TAG}study_key": self.study_key, f"{TAG}study_hash": self.study_hash}
        study = study_params.get("study")
        if isinstance(study, Mapping) and "rounds" in study:
            tags[f"{TAG}rounds"] = str(study["rounds"])
        if self.exp_name:
            tags[f"{TAG}dvc_exp_name"] = self.exp_name
        return tags

    def _update_parent(self, run: Any, study: str, study_params: Mapping[str, Any]) -> None:
        tags = run.data.tags
        changed = {k: v for k, v in self._parent_tags(study_params).items() if tags.get(k) != v}
        if changed:
            self.log_tags(run.info.run_id, changed)
        exp_name = self.exp_name or tags.get(f"{TAG}dvc_exp_name")
        name = parent_name(study, exp_name)
        if run.info.run_name != name:
            self.client.update_run(run.info.run_id, name=name)

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
        _OWN[run_id] = self.raw  # marked FAILED on the way out, without waiting out an outage
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
        `run_ids[k]` while it trains (buffered through an outage of the store)."""
        return LiveCurves(self.raw, run_ids, every_s, self.uri)

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
        """FINISHED (waiting out an outage), or FAILED: tried once, since the stage is
        failing anyway (its watchdog or a later sweep marks the run when the store
        answers)."""
        if ok:
            self.client.set_terminated(run_id, status="FINISHED")
            _OWN.pop(run_id, None)
        else:  # a failed run waits for its reason (explain_failure)
            try:
                self.raw.set_terminated(run_id, status="FAILED")
            except Exception:
                return  # still open for the watchdog
        if self.watchdog is not None:
            self.watchdog.send("end", run_id)
