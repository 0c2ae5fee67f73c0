"""XLA's persistent compilation cache: a training process loads the engine's compiled programs
from disk instead of compiling them again.

Every training stage compiles the same few XLA programs (a training chunk, one evaluation
per set size) for the same shapes: measured on a 2-core AMD EPYC, 2.6 s of a tiny stage's
13 s (4.7 s of its 16 s of CPU, XLA compiling on both cores).
TensorFlow can keep compiled programs on disk (`--tf_xla_persistent_cache_directory`), keyed
by the program: an entry is used only if its whole HLO equals the one being compiled. Two
things it does not do, and this module adds:

- *It does not key a program by the machine.* XLA compiles for the host's vector extensions,
  and a network's bits are those of its CPU family (`lottery.core.machine`). The shared folder
  is therefore one per TensorFlow version, CPU (model, architecture and every feature flag
  the kernel lists), `XLA_FLAGS` and thread count (`folder()`): a program compiled on one
  CPU is never run on another, and a cached program computes bit for bit what a fresh
  compile computes (tests/engine/test_process_bits.py).
- *It writes entries in place*, so a process could read another's half-written file and fail.
  Each process therefore works in a private folder of hard links to the shared entries, and
  publishes the programs it compiled when it exits, each by one atomic rename: no process
  ever sees a partial entry. A killed process publishes nothing; a later process sweeps its
  private folder once it is a day old and its process is gone. An entry that is not whole
  (a truncated file: `complete`) is not used; its program is compiled and published again.

Only programs compiled for the CPU are cached (on a GPU they would depend on the card).
`LOTTERY_XLA_CACHE` names the root folder (default `$XDG_CACHE_HOME/lottery/xla`, else
`~/.cache/lottery/xla`), or `off`. The cache holds nothing a study's results depend on: delete
it at any time. A user's own `--tf_xla_persistent_cache_directory` in `TF_XLA_FLAGS` wins.

This module must run before TensorFlow is imported (`lottery.engine.mlp` calls `enable`).
"""

from __future__ import annotations

import atexit
import hashlib
import mmap
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from lottery.core.machine import cpuinfo, threads

#: The environment variable naming the cache's root folder (or "off").
ENV = "LOTTERY_XLA_CACHE"
#: TensorFlow's flag for the folder it reads and writes.
FLAG = "--tf_xla_persistent_cache_directory"
#: The flags `enable` added to TF_XLA_FLAGS, so a child process can tell them from a user's.
ADDED = "LOTTERY_XLA_CACHE_FLAGS"
#: Private folders older than this (seconds) belong to processes that died: swept.
STALE_AFTER = 24 * 3600


def root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache's root folder, or None when `LOTTERY_XLA_CACHE` is `off` (or 0, or empty)."""
    env = os.environ if environ is None else environ
    value = env.get(ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no") else Path(value)
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lottery" / "xla"


def _tensorflow_version() -> str:
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"):
        try:
            return f"{dist}-{metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "tensorflow-unknown"


def machine_key(text: str, xla_flags: str, tensorflow: str, threads: int) -> str:
    """What a compiled CPU program may depend on, hashed: TensorFlow's version, the
    architecture, the CPU's model and full feature list (/proc/cpuinfo's first CPU),
    `XLA_FLAGS`, and the intra-op thread count (XLA may split loops by it)."""
    first_cpu = text.split("\n\n", 1)[0]
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part", "vendor_id")
    lines = sorted(
        line.split(":", 1)[0].strip() + ":" + " ".join(sorted(line.split(":", 1)[1].split()))
        for line in first_cpu.splitlines()
        if ":" in line and line.split(":", 1)[0].strip() in wanted
    )
    text = "\n".join([tensorflow, platform.machine(), xla_flags, f"threads {threads}", *lines])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder(base: Path) -> Path:
    """This machine's shared folder under `base` (see `machine_key`)."""
    # Not Linux: the processor string is what the platform gives.
    info = cpuinfo() or f"model name: {platform.processor()}"
    tf = _tensorflow_version()
    key = machine_key(info, os.environ.get("XLA_FLAGS", ""), tf, threads())
    return base / f"{tf}-{key}"


def _varint(data: bytes | mmap.mmap, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def complete(path: Path) -> bool:
    """Whether `path` holds a whole serialized cache entry as far as its framing tells: every
    top-level protobuf field ends inside the file, and the key (field 1) and the program
    (field 3) are there. A truncated file fails this; TensorFlow would fail the stage on it."""
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _framed(data)
    except (OSError, ValueError):  # unreadable, or empty (mmap refuses 0 bytes)
        return False


def _framed(data: mmap.mmap) -> bool:
    fields, at = set(), 0
    try:
        while at < len(data):
            tag, at = _varint(data, at)
            kind = tag & 7
            if kind == 0:
                _, at = _varint(data, at)
            elif kind == 2:
                length, at = _varint(data, at)
                at += length
            elif kind in (1, 5):
                at += 8 if kind == 1 else 4
            else:
                return False
            fields.add(tag >> 3)
    except ValueError:
        return False
    return at == len(data) and {1, 3} <= fields


def _alive(folder_name: str) -> bool:
    pid = folder_name.split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class Workspace:
    """One process's private view of the shared folder: hard links in, new entries out."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        work = shared / ".work"
        work.mkdir(parents=True, exist_ok=True)
        self._sweep(work)
        self.private = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=work))
        self.seeded = set[str]()
        for entry in shared.glob("*.pb"):
            if not complete(entry):  # damaged: compiled again, then replaced
                continue
            try:
                os.link(entry, self.private / entry.name)
            except OSError:  # a file system without hard links: copy
                shutil.copy2(entry, self.private / entry.name)
            self.seeded.add(entry.name)

    @staticmethod
    def _sweep(work: Path) -> None:
        """Remove the private folders of processes that died (a day old, their pid gone)."""
        now = time.time()
        for old in work.iterdir():
            try:
                if now - old.stat().st_mtime > STALE_AFTER and not _alive(old.name):
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                continue

    def publish(self) -> list[str]:
        """Move this process's new entries into the shared folder; remove the private one.
        Returns the names published."""
        published = []
        for entry in sorted(self.private.glob("*.pb")):
            if entry.name in self.seeded:
                continue
            tmp = self.shared / f".{entry.name}.{os.getpid()}"
            try:  # whole before it takes the entry's name, atomically
                tmp.unlink(missing_ok=True)  # left by a killed process of the same pid
                os.link(entry, tmp)
                os.replace(tmp, self.shared / entry.name)
                published.append(entry.name)
            except OSError:  # a full or read-only disk: the cache is only a cache
                tmp.unlink(missing_ok=True)
        shutil.rmtree(self.private, ignore_errors=True)
        return published


def enable() -> Workspace | None:
    """Point TensorFlow's XLA cache at a private folder seeded from this machine's shared one,
    and publish what this process compiles when it exits. Call before importing TensorFlow.
    Does nothing when the cache is off, when `TF_XLA_FLAGS` already names a cache folder, or
    when the folder cannot be made (a read-only home)."""
    try:
        base = root()
    except RuntimeError:  # no home folder to put the default under
        base = None
    flags = os.environ.get("TF_XLA_FLAGS", "")
    inherited = os.environ.get(ADDED, "")
    if inherited and flags.endswith(inherited):  # a parent's private folder: not ours
        flags = flags[: -len(inherited)].rstrip()
        os.environ["TF_XLA_FLAGS"] = flags
        del os.environ[ADDED]
    if base is None or FLAG in flags:
        return None
    try:
        space = Workspace(folder(base))
    except OSError:
        return None
    added = f"{FLAG}={space.private} --tf_xla_persistent_cache_device_types=CPU"
    os.environ["TF_XLA_FLAGS"] = f"{flags} {added}".strip()
    os.environ[ADDED] = added
    atexit.register(space.publish)
    return space
