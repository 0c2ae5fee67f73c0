"""The sweep of the MLflow store's RUNNING runs: each one's owning process (`lottery.host`,
`.boot_id`, `.pid_ns`, `.pid`, `.pid_start`) is alive, gone (an orphan of a killed
attempt: a problem, or with `--repair` marked FAILED with the reason), or elsewhere (another
host, boot or PID namespace, whose processes cannot be checked from here: listed)."""

from __future__ import annotations

from typing import Any

from lottery.audit.links import Problem
from lottery.audit.mlflow_runs import RunStore


class OrphanSweep:
    """Every RUNNING run of `store` with its owner's state; orphans go to `general` as
    problems, or are marked FAILED (the only write the audit makes to the store)."""

    def __init__(self, store: RunStore, general: list[Problem]) -> None:
        self.store = store
        self.general = general

    def running(self, repair: bool) -> list[dict[str, Any]]:
        """One entry per RUNNING run (what `--json` lists under `running`); with `repair`
        each orphan is marked FAILED and listed as repaired."""
        from lottery.tracking.owners import mark_failed, orphan_reason, running_runs

        client = self.store.client()
        if client is None:
            return []
        out = []
        for run in running_runs(client):
            entry = _entry(run)
            if entry["owner"] == "gone" and repair:
                mark_failed(client, run.info.run_id, orphan_reason(run, "lottery audit --repair"))
                entry["repaired"] = True
            elif entry["owner"] == "gone":
                self.general.append(_orphan(run, entry))
            out.append(entry)
        return out


def _entry(run: Any) -> dict[str, Any]:
    """A RUNNING run as the audit lists it: who runs it where, and its owner's state."""
    from lottery.tracking.owners import owner_state, where

    tags = run.data.tags
    state = owner_state(tags)
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "stage": tags.get("lottery.dvc_stage"),
        "host": tags.get("lottery.host"),
        "pid": tags.get("lottery.pid"),
        "owner": state,
        "where": where(tags) if state == "elsewhere" else None,
        "repaired": False,
    }


def _orphan(run: Any, entry: dict[str, Any]) -> Problem:
    """The problem an orphan (a RUNNING run whose process is gone) is, with the fix."""
    return Problem(
        f"mlflow run {run.info.run_id}",
        "mlflow",
        f"run {run.info.run_name} (stage {entry['stage']}) is RUNNING but its "
        f"process (pid {entry['pid']} on {entry['host']}) is gone: an orphan "
        "of a killed attempt. `lottery audit --repair` marks it FAILED",
    )
