"""The MLflow side of a stage: `StudyRecorder` opens the store, the study's experiment and
parent run (`parents`), sweeps orphans (`owners`), and records one child run per (stage,
trial, condition, repeat): its params, tags, dataset, curves (`curves`), summary and
artifacts.

Each run it starts is owned by this process until it ends: a stage killed outright
leaves it to its watchdog (`watchdog`); a stage that fails leaves it to
`explain_failure`, which the entry point (`lottery.core.errors.guarded`) finds through
`sys.modules` when this module is loaded, and which marks it FAILED with the reason.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lottery.core.io import project_root
from lottery.tracking.context import context_tags
from lottery.tracking.curves import LiveCurves
from lottery.tracking.owners import FAILURE_TAG, fail_orphans, mark_failed, owner_tags
from lottery.tracking.parents import ParentRun, experiment_id
from lottery.tracking.store import (
    PatientClient,
    check_reachable,
    check_uri,
    open_client,
    tracking_uri,
    transient,
)
from lottery.tracking.watchdog import Watchdog, end_all

# MLflow loads after `lottery.tracking.store`, which sets its environment first.
# isort: split
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

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
    end_all(done)
    return done


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
        self.exp_name = os.environ.get("DVC_EXP_NAME") or None
        self.watchdog: Watchdog | None = None
        self.experiment_id = experiment_id(self.client, experiment, self.uri)
        parent = ParentRun(self.client, self.experiment_id, study_hash, study_params, self.exp_name)
        self.study_key = parent.study_key
        self.parent_id = parent.open(experiment)
        # Every stage that records (training, report) sweeps orphans as it opens the store.
        stage = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).name
        self.swept = fail_orphans(self.client, f"stage {stage} (pid {os.getpid()})")

    def fail_stale_runs(self, dvc_stage: str) -> list[str]:
        """Mark FAILED every RUNNING run of this store whose process is gone.

        Not only this stage's and this study's: an attempt killed before a params change,
        or one whose stage DVC later restored from its cache, is found here too. Runs of
        live processes (a parallel experiment) and of other hosts are left alone. The
        recorder already swept once when it opened the store: those runs are included."""
        swept, self.swept = self.swept, []
        return swept + fail_orphans(self.client, f"stage {dvc_stage} (pid {os.getpid()})")

    def start_child(self, run_name: str, tags: Mapping[str, str]) -> str:
        """A new child run of the study's parent, owned by this process and watched."""
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
            self.watchdog = Watchdog(self.uri, project_root())
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
