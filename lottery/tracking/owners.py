"""Who owns a RUNNING run, and the sweep that marks orphans FAILED.

Every run names the process that owns it (`lottery.host`, `.boot_id`, `.pid_ns`, `.pid`,
`.pid_start`): a RUNNING run whose process is gone is an orphan: the stage's watchdog,
every later stage that opens the store and `lottery audit --repair` mark it FAILED with
the reason in `lottery.failure` (README "Scaling out and reliability"). A run of another
machine, boot or PID namespace is never marked: its process cannot be checked from here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lottery.core.lineage import TAG  # prefix of every tag this project sets
from lottery.tracking.store import MAX_PARAM_LEN, PatientClient

if TYPE_CHECKING:
    from mlflow import MlflowClient

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
    """Why an orphan is FAILED (its `lottery.failure`): whose process ended, who found it."""
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
