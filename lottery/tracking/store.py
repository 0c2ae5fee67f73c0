"""The MLflow tracking store: where it is, a client that waits out its outages, and every
store error as one line.

- Tracking URI: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<project root>/mlflow.db`,
  the project root resolved from `DVC_ROOT` so that `dvc exp run --temp/--queue` (which
  run in `.dvc/tmp/exps/...`) record into the same store.
- A tracking server that stops answering does not stop a stage: every call waits out an
  outage of up to `OUTAGE_S` seconds before it fails (`patiently`, `PatientClient`).
- Every MLflow or database failure is a `TrackingError`: one line naming the store and
  the fix (`store_problem`). `store_error_line` is the stage entry point's last resort:
  `lottery.core.errors` finds it through `sys.modules` when this module is loaded.

MLflow reads its environment (telemetry, HTTP retries and timeout) when it loads: this
module sets it first, and the package's other modules import this one before MLflow.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Each call gives up after MLflow's own 2 retries (seconds); `patiently` then waits out
# the rest of an outage, up to OUTAGE_S, with a line saying so.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

from mlflow import MlflowClient

from lottery.core.errors import UserError, describe_size
from lottery.core.io import project_root

MAX_PARAM_LEN = 6000  # MLflow's limit on a param's or a tag's value

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
        if "database is locked" in first_line(e):
            return True
    return False


def first_line(exc: BaseException) -> str:
    """The first line of what `exc` says (its type's name when it says nothing)."""
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
            return template.replace("{size}", size).replace("{first}", first_line(exc)[:200])
    return None


def store_problem(exc: BaseException, uri: str) -> str | None:
    """One line naming what is wrong with the tracking store at `uri` and the fix, for the
    errors a store itself causes (unusable database file, missing driver, a URL that does
    not parse); None for errors of a request (the caller's business)."""
    chain = _chain(exc)
    names = {f"{type(e).__module__}.{type(e).__name__}" for e in chain}
    if any(n.endswith("IntegrityError") for n in names):
        return None  # a unique key raced by a parallel writer: the caller retries
    text = " ".join(first_line(e) for e in chain).lower()
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
        "unsupported uri" in first_line(e).lower()
        or "could not find a registered tracking store" in first_line(e).lower()
        for e in chain
    ):
        return f"MLFLOW_TRACKING_URI is {uri!r}, which MLflow cannot open. {_URI_FIX}"
    return None


def store_error_line(exc: BaseException, uri: str | None = None) -> str:
    """Any error of MLflow or its database as one line (the stage entry point's last
    resort, `lottery.core.errors.guarded`): the store's problem and fix when known."""
    uri = uri or tracking_uri()
    known = store_problem(exc, uri)
    if known is not None:
        return known
    if transient(exc):
        return (
            f"the MLflow tracking store at {uri} does not answer ({first_line(exc)[:200]}): "
            "start it (or the SSH tunnel to it) and rerun."
        )
    return f"the MLflow store {uri} refused a request: {first_line(exc)[:300]}"


def raise_store_problem(exc: BaseException, uri: str) -> None:
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
        raise_store_problem(exc, uri)
        raise


def answers(uri: str, timeout: float = 2.0) -> bool:
    """Whether a tracking server answers its /health now (any other store: True)."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def note(msg: str) -> None:
    """A line on stderr about the store (an outage, its end), while the stage goes on."""
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
                raise_store_problem(exc, uri)
                raise
            now = time.monotonic()
            if began is None:
                began = now
                note(
                    f"the tracking store at {uri} does not answer ({first_line(exc)[:160]}); "
                    f"trying again for up to {OUTAGE_S:.0f} s"
                )
            if now - began >= OUTAGE_S:
                raise_store_problem(exc, uri)  # an SQLite file locked all along
                raise TrackingError(
                    f"the MLflow tracking store at {uri} has not answered for "
                    f"{now - began:.0f} s ({what}: {first_line(exc)[:200]}). Restart it "
                    "(or the SSH tunnel to it), then rerun `dvc repro`: the outputs of "
                    "finished stages are kept."
                ) from None
            time.sleep(min(delay, max(0.0, OUTAGE_S - (now - began))))
            delay = min(delay * 2, 10.0)
            continue
        if began is not None:
            waited = time.monotonic() - began
            note(f"the tracking store at {uri} answers again after {waited:.0f} s")
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
