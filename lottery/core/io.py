"""Atomic file writes, hashing, the project root and its commit: one place for each.

Every output is written to a temporary file in the same directory and renamed into
place (`os.replace` is atomic on POSIX), so an interrupted stage never leaves a file
that looks complete. The file gets the mode an ordinary `open(path, "w")` would give it:
an existing file keeps its mode (a tracked `params.yaml` stays 644), a new one gets
0666 minus the umask (`mkstemp` alone would make every output owner-only, 0600).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from lottery.core.errors import UserError

#: What marks the project root, as DVC finds it: the directory holding `.dvc/`.
ROOT_MARKERS = (".dvc", "dvc.yaml")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: the only portable way is to set it and restore it
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The permission bits `path` should get: its own if it exists, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


#: A write that found no room (full disk, quota, file size limit): its error names the file.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; rename it onto `path` on success.

    A write that finds the disk full raises an OSError naming `path` (the bare error of a
    write names no file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if exc.errno in _NO_ROOM and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any, sort_keys: bool = True) -> None:
    """Write `obj` as indented JSON, atomically; keys sorted unless `sort_keys` is False
    (where the order is for a reader, as in summary.json's `dvc exp show` columns)."""
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=sort_keys)
        fh.write("\n")


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def write_text(path: str | Path, text: str, newline: str | None = None) -> None:
    """Write `text` atomically; `newline="\r\n"` writes each line end as CRLF."""
    with atomic_open(path, "w", newline=newline) as fh:
        fh.write(text)


def newline_of(path: str | Path) -> str | None:
    """`"\r\n"` when the file at `path` ends its lines with CRLF (keep it so when
    rewriting it), else None (the platform's, `\n` on POSIX)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return "\r\n" if b"\r\n" in data and data.count(b"\r\n") == data.count(b"\n") else None


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save plain numeric arrays (never objects) atomically."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"refusing to save object array {name!r} to {path}")
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_root(start: str | Path | None = None) -> Path | None:
    """The nearest directory at or above `start` (default: cwd) holding `.dvc/` and
    `dvc.yaml`, as git and DVC find theirs; None outside any project.

    A `dvc exp run --temp` / `--queue` workspace (`<root>/.dvc/tmp/exps/...`) belongs to
    the project that holds it.
    """
    here = Path(start if start is not None else os.getcwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for d in (here, *here.parents):
        if all((d / m).exists() for m in ROOT_MARKERS):
            return d
    return None


def project_root(required: bool = False) -> Path:
    """The project this process works in: `find_root` of `DVC_ROOT` (DVC sets it for a
    stage, also in `dvc exp run --temp` / `--queue` workspaces), else of the current
    directory. Outside any project: that directory itself or, when `required` (a command
    that must run in a project), a UserError saying how to get into one."""
    start = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    root = find_root(start)
    if root is not None:
        return root
    if required:
        raise UserError(
            f"{start} is not inside a lottery project (no directory at or above it "
            "holds .dvc/ and dvc.yaml); cd into the project and rerun."
        )
    return start


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


def read_yaml(text: str) -> Any:
    """Parse YAML exactly as DVC does (ruamel.yaml, safe, YAML 1.2: `1e-3` is a number).

    The one reader of params.yaml in this project, so that the stages, `lottery rounds`
    and DVC (`dvc params diff`, `dvc exp run -S`) never disagree on what a value is.
    Raises ruamel's `YAMLError` on malformed text.
    """
    import warnings

    from ruamel.yaml import YAML

    with warnings.catch_warnings():  # e.g. a `%YAML 1.1` header's float-syntax notes
        warnings.simplefilter("ignore")
        return YAML(typ="safe").load(text)
