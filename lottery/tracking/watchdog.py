"""A stage's watchdog: the separate process that marks the stage's runs FAILED when the
stage dies outright (SIGKILL, even of its whole process group).

It outlives the stage: it holds the read end of a pipe whose write end only the stage
holds, in a session of its own. The stage sends "run ID" when it starts a run and
"end ID" when it ends one; end of file with runs not ended means the stage died, and the
watchdog marks them FAILED. Both ends are here: the stage's, `Watchdog`, starts

    python -P -m lottery.tracking.watchdog TRACKING_URI STAGE_PID

whose `main` imports only the standard library until the pipe closes, and MLflow only
when runs were left open: a stage that ends normally costs one idle Python process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

#: This module, as `python -m` runs it.
MODULE = "lottery.tracking.watchdog"


class Watchdog:
    """The stage's end of the pipe: starts the watchdog and tells it which runs are open."""

    def __init__(self, uri: str, cwd: Path) -> None:
        # The watchdog runs the package the stage runs: `-P` keeps its working directory
        # off sys.path, and the directory holding this package leads PYTHONPATH.
        code = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (code, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": path}
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-P", "-m", MODULE, uri, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives a kill of the stage's process group
            cwd=str(cwd),
            env=env,
        )
        self.open: set[str] = set()
        _WATCHDOGS.append(self)

    def send(self, word: str, run_id: str) -> None:
        """Tell the watchdog that run `run_id` started ("run") or ended ("end")."""
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
        """Close the pipe and wait for the watchdog to exit (it marks what is still open)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self in _WATCHDOGS:
            _WATCHDOGS.remove(self)


_WATCHDOGS: list[Watchdog] = []


def end_all(run_ids: Sequence[str]) -> None:
    """Tell every watchdog of this process that `run_ids` ended, and close them all (the
    stage is ending: what is still open when a pipe closes, its watchdog marks FAILED)."""
    for watchdog in list(_WATCHDOGS):
        for run_id in run_ids:
            watchdog.send("end", run_id)
        watchdog.close()


# ---------------------------------------------------------------- the watchdog process


def open_runs(lines: Iterable[str]) -> list[str]:
    """The runs the stage started and did not end, read from its messages to end of file."""
    started: list[str] = []
    for line in lines:
        word, _, run_id = line.strip().partition(" ")
        if word == "run":
            started.append(run_id)
        elif word == "end" and run_id in started:
            started.remove(run_id)
    return started


def mark_killed(uri: str, pid: str, run_ids: Sequence[str]) -> None:
    """Mark FAILED each of `run_ids` still RUNNING: its stage process `pid` died."""
    from lottery.tracking.owners import mark_failed
    from lottery.tracking.store import open_client

    client = open_client(uri)
    reason = (
        f"killed: its stage process (pid {pid} on {socket.gethostname()}) died "
        "before finishing the run; marked FAILED by its watchdog"
    )
    for run_id in run_ids:
        with contextlib.suppress(Exception):  # a run deleted meanwhile, a store gone
            if client.get_run(run_id).info.status == "RUNNING":
                mark_failed(client, run_id, reason)


def main(argv: Sequence[str]) -> None:
    """The watchdog of the stage process `argv[1]` recording into the store `argv[0]`."""
    uri, pid = argv
    left = open_runs(sys.stdin)
    if left:
        mark_killed(uri, pid, left)


if __name__ == "__main__":
    main(sys.argv[1:])
