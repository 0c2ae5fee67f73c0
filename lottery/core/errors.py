"""The base of every error a user sees as one paragraph, and how every entry point ends.

Each module raises its own subclass (ParamsError, DataError, MaskError, TrackingError);
the stage scripts and the `lottery` command catch `UserError` and print `error: <message>`.
The message names the problem and the fix.

`guarded` runs an entry point's body and turns each way it can end into one line and a
conventional exit status: 0 done, 1 a failed check or an OS error (a full disk names the
file and its filesystem), 2 a usage or input error (`error: ...`, also every error of
MLflow or its database), 130 Ctrl-C, 143 SIGTERM, 141 a closed output pipe (silent, as
`git` and `cat` are). The MLflow runs a stage leaves open are marked FAILED with the reason
("interrupted", ...). The stage scripts' entry point, `lottery.study.entry.stage_main`,
and the `lottery` command both end through `guarded`.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_SIGPIPE = 128 + signal.SIGPIPE  # 141
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class UserError(Exception):
    """An error whose message is the whole story (no traceback needed)."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that `finally` blocks and cleanup run."""


def fail(msg: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the filesystem holding `path` (or what of it exists)."""
    p = os.path.abspath(path)
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    while not os.path.ismount(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    return p


def describe_size(path: str | os.PathLike[str]) -> str:
    """`filesystem /mnt/data: 12.3 MB free of 1.0 GB`: where `path` is, and its room."""
    mount = mount_point(path)
    try:
        usage = shutil.disk_usage(mount)
    except OSError:
        return f"filesystem {mount}"
    return f"filesystem {mount}: {_size(usage.free)} free of {_size(usage.total)}"


#: Errors that say a write found no room: the file and its filesystem are named.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT}


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: the file, the error, and for a full disk the filesystem and
    the fix. A copy that found no room names its destination (`filename2`), not its source."""
    room = exc.errno in NO_ROOM or exc.errno == errno.EFBIG
    target = (exc.filename2 or exc.filename) if room else exc.filename
    where = f"{os.fsdecode(target)}: " if target is not None else ""
    text = exc.strerror or str(exc)
    if exc.errno in NO_ROOM:
        place = describe_size(target) if target is not None else "a filesystem (`df -h`)"
        text += f" ({place}); free space there and rerun"
    elif exc.errno == errno.EFBIG:
        text += " (a file size limit: `ulimit -f`, or the filesystem's largest file)"
    return where + text


def _store_error_line(exc: BaseException) -> str | None:
    """An error of MLflow or its database (SQLAlchemy, sqlite3) as one line; None for any
    other error (a bug keeps its traceback)."""
    top = type(exc).__module__.split(".")[0]
    if top not in ("mlflow", "sqlalchemy", "sqlite3"):
        return None
    tracking = sys.modules.get("lottery.tracking.store")
    if tracking is not None:
        line: str | None = tracking.store_error_line(exc)
        return line
    text = str(exc).strip().splitlines()
    return f"MLflow: {text[0] if text else type(exc).__name__}"


def _quiet_stdout() -> None:
    """After a closed pipe: send what is left to /dev/null so exit does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _explain_runs(reason: str) -> list[str]:
    """Mark the MLflow runs this process left open FAILED with `reason` (if it made any)."""
    tracking = sys.modules.get("lottery.tracking.recorder")  # loaded only by stages that record
    if tracking is None:
        return []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: finish this
    try:
        done: list[str] = tracking.explain_failure(reason)
    finally:
        signal.signal(signal.SIGINT, previous)
    return done


def guarded(body: Callable[[], int | None], what: str) -> int:
    """Run `body`, turning every way it can end into one line and an exit status.

    Returns `body`'s status (0 for None); raises SystemExit otherwise. Errors that are
    not the user's (bugs) keep their traceback, after the open runs are marked FAILED."""
    try:
        code = body() or 0
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_stdout()
        raise SystemExit(EXIT_SIGPIPE) from None
    except UserError as exc:
        _explain_runs(f"error: {exc}")
        fail(str(exc))
    except KeyboardInterrupt:
        runs = _explain_runs("interrupted")
        marked = f"; {len(runs)} MLflow run(s) marked FAILED (interrupted)" if runs else ""
        print(f"interrupted: {what} stopped by Ctrl-C{marked}.", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Terminated:
        runs = _explain_runs("terminated (SIGTERM)")
        marked = f"; {len(runs)} MLflow run(s) marked FAILED (terminated)" if runs else ""
        print(f"terminated: {what} stopped by SIGTERM{marked}.", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_TERMINATED) from None
    except OSError as exc:
        _explain_runs(f"error: {exc}")
        fail(os_error_line(exc), 1)
    except Exception as exc:
        line = _store_error_line(exc)
        if line is not None:  # MLflow's or its database's: one line, as a UserError
            _explain_runs(f"error: {line}")
            fail(line)
        _explain_runs(f"error: {type(exc).__name__}: {exc}")
        raise
