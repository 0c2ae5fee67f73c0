"""The MLflow check: the run a lineage names exists, is live, FINISHED, and its tags and
artifacts equal the files; every RUNNING run of the store has a live owner."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lottery.audit.links import Expected, Link, Problem, add_problem
from lottery.core.arch import LENET, Architecture
from lottery.core.lineage import RunTags
from lottery.core.masks import MaskError, load_mask, mask_hash


class MlflowRuns:
    """The store at `uri`, with the runs and experiments it has fetched; logged masks are
    read as those of network `arch`."""

    def __init__(self, uri: str, general: list[Problem], arch: Architecture = LENET) -> None:
        self.uri = uri
        self.general = general
        self.arch = arch
        self._client: Any = None
        self._mlflow_error: str | None = None
        self._runs: dict[str, Any] = {}
        self._experiments: dict[str, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="lottery-audit-")

    def cleanup(self) -> None:
        self._tmp.cleanup()

    def client(self) -> Any:
        if self._client is None and self._mlflow_error is None:
            from lottery.tracking.store import (
                TrackingError,
                check_reachable,
                check_uri,
                open_client,
            )

            try:
                check_uri(self.uri)
                check_reachable(self.uri)
                self._client = open_client(self.uri)
            except TrackingError as exc:
                self._mlflow_error = str(exc).split(". Start it")[0]
                self.general.append(Problem(self.uri, "mlflow", self._mlflow_error))
        return self._client

    def get_run(self, run_id: str) -> Any:
        return _cached(self._runs, run_id, lambda: self.client().get_run(run_id))

    def same_result_runs(self, link: Link, exp: Expected | None) -> list[Any]:
        """Finished runs of the same stage and trial that produced the same hash."""
        if not link.sha256 or link.stage is None:
            return []
        key = "next_mask_sha256" if link.condition == "ticket" else "mask_sha256"
        filt = (
            f"tags.`lottery.{key}` = '{link.sha256}' and tags.`lottery.dvc_stage` = '{link.stage}'"
            f" and tags.`lottery.condition` = '{link.condition}'"
            f" and attributes.status = 'FINISHED'"
        )
        if link.trial is not None:
            filt += f" and tags.`lottery.trial` = '{link.trial}'"
        if exp is not None and exp.repeat is not None:
            filt += f" and tags.`lottery.repeat` = '{exp.repeat}'"
        client = self.client()
        exps = [e.experiment_id for e in client.search_experiments()]
        return list(client.search_runs(exps, filter_string=filt, max_results=1000))

    def check_run(
        self,
        link: Link,
        lineage: dict[str, Any],
        exp: Expected | None,
        parent_sha: str | None,
        theta_sha: str | None,
    ) -> None:
        run_id = lineage.get("mlflow_run_id")
        if not run_id:
            if link.stage != "init":
                add_problem(link, "lineage", "its lineage records no MLflow run id")
            return
        link.run_id = str(run_id)
        if self.client() is None:
            return
        others = [
            r.info.run_id for r in self.same_result_runs(link, exp) if r.info.run_id != run_id
        ]
        run = self.get_run(link.run_id)
        if run is None:
            hint = f" (runs with the same result: {', '.join(others)})" if others else ""
            add_problem(
                link,
                "mlflow",
                f"its lineage names MLflow run {run_id}, which does not exist in {self.uri}{hint}",
            )
            return
        link.reproductions = others
        self.check_run_state(link, run)
        want = expected_tags(link, lineage, exp, parent_sha, theta_sha)
        tags = run.data.tags
        for tag, value in want.as_tags().items():
            if tags.get(tag) != value:
                add_problem(
                    link,
                    "mlflow",
                    f"MLflow run {run_id} has tag {tag}={tags.get(tag)!r}, the files say {value!r}",
                )
        self.check_artifacts(link, run_id, lineage)

    def check_run_state(self, link: Link, run: Any) -> None:
        """Not deleted (nor its experiment), and FINISHED: else the run is not evidence."""
        from lottery.tracking.store import FAILURE_TAG, owner_state, where

        run_id = run.info.run_id
        if run.info.lifecycle_stage != "active":
            add_problem(
                link,
                "mlflow",
                f"MLflow run {run_id} is deleted (lifecycle stage {run.info.lifecycle_stage!r}): "
                f"restore it with `mlflow runs restore --run-id {run_id}` "
                "(with MLFLOW_TRACKING_URI set to this store), or rerun the stage "
                f"(`dvc repro -f -s {link.stage}`)",
            )
        exp = self.experiment(run.info.experiment_id)
        if exp is not None and exp.lifecycle_stage != "active":
            add_problem(
                link,
                "mlflow",
                f"MLflow run {run_id} belongs to the deleted experiment {exp.name!r}: restore "
                f"it with `mlflow experiments restore --experiment-id {exp.experiment_id}`",
            )
        status = run.info.status
        if status == "FINISHED":
            return
        tags = run.data.tags
        if status == "RUNNING":
            owner = owner_state(tags)
            detail = {
                "alive": "its stage is still running",
                "gone": "its process is gone (an orphan): `lottery audit --repair` marks it "
                "FAILED, then `dvc repro -f -s " + str(link.stage) + "` redoes the stage",
                "elsewhere": f"its process runs on {where(tags)}, which cannot be "
                "checked from here",
            }[owner]
            add_problem(link, "mlflow", f"MLflow run {run_id} is RUNNING: {detail}")
            return
        why = tags.get(FAILURE_TAG)
        add_problem(
            link,
            "mlflow",
            f"MLflow run {run_id} has status {status}"
            + (f" ({why})" if why else "")
            + f": the files may come from an attempt that did not finish; `dvc repro -f -s "
            f"{link.stage}` redoes the stage",
        )

    def experiment(self, experiment_id: str) -> Any:
        return _cached(
            self._experiments, experiment_id, lambda: self.client().get_experiment(experiment_id)
        )

    def running(self, repair: bool) -> list[dict[str, Any]]:
        """Every RUNNING run of the store with its owner's state; orphans are problems
        (or, with `repair`, marked FAILED with the reason and listed as repaired)."""
        from lottery.tracking.store import mark_failed as tracking_mark_failed
        from lottery.tracking.store import orphan_reason, owner_state, running_runs, where

        client = self.client()
        if client is None:
            return []
        out = []
        for run in running_runs(client):
            tags = run.data.tags
            state = owner_state(tags)
            entry = {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "stage": tags.get("lottery.dvc_stage"),
                "host": tags.get("lottery.host"),
                "pid": tags.get("lottery.pid"),
                "owner": state,
                "where": where(tags) if state == "elsewhere" else None,
                "repaired": False,
            }
            if state == "gone" and repair:
                tracking_mark_failed(
                    client, run.info.run_id, orphan_reason(run, "lottery audit --repair")
                )
                entry["repaired"] = True
            elif state == "gone":
                self.general.append(
                    Problem(
                        f"mlflow run {run.info.run_id}",
                        "mlflow",
                        f"run {run.info.run_name} (stage {entry['stage']}) is RUNNING but its "
                        f"process (pid {entry['pid']} on {entry['host']}) is gone: an orphan "
                        "of a killed attempt. `lottery audit --repair` marks it FAILED",
                    )
                )
            out.append(entry)
        return out

    def check_artifacts(self, link: Link, run_id: str, lineage: dict[str, Any]) -> None:
        name = Path(link.path).name
        dst = Path(self._tmp.name) / run_id
        dst.mkdir(exist_ok=True)
        for art in (f"mask/{name}", f"mask/{Path(name).with_suffix('.json')}"):
            try:
                local = Path(self.client().download_artifacts(run_id, art, str(dst)))
            except Exception as exc:  # missing artifact, unreachable artifact store
                add_problem(
                    link, "mlflow", f"cannot download artifact {art} of run {run_id}: {exc}"
                )
                continue
            if art.endswith(".npz"):
                try:
                    got = mask_hash(load_mask(local, arch=self.arch), arch=self.arch)
                except MaskError as exc:
                    add_problem(link, "mlflow", f"artifact {art} of run {run_id}: {exc}")
                    continue
                on_disk = link.sha256 or link.recorded_sha256
                if got != on_disk:
                    add_problem(
                        link,
                        "mlflow",
                        f"MLflow artifact {art} of run {run_id} hashes to {got[:16]}…, the "
                        f"file on disk to {str(on_disk)[:16]}…: they differ",
                    )
            else:
                try:
                    record = json.loads(local.read_text())
                except ValueError as exc:
                    add_problem(link, "mlflow", f"artifact {art} of run {run_id}: {exc}")
                    continue
                diff = sorted(
                    k for k in set(record) | set(lineage) if record.get(k) != lineage.get(k)
                )
                if diff:
                    add_problem(
                        link,
                        "mlflow",
                        f"MLflow artifact {art} of run {run_id} differs from the lineage on "
                        f"disk in {', '.join(diff)}",
                    )


def expected_tags(
    link: Link,
    lineage: dict[str, Any],
    exp: Expected | None,
    parent_sha: str | None,
    theta_sha: str | None,
) -> RunTags:
    """The lineage tags the run that produced `link` must carry, as the files say.

    A ticket's run trained its parent mask and pruned to this one; a control's run
    trained this mask, drawn from (or equal to) its parent."""
    is_ticket = link.condition == "ticket"
    return RunTags(
        dvc_stage=link.stage,
        condition=link.condition,
        trial=link.trial,
        round=exp.run_round if exp else None,
        repeat=exp.repeat if exp else None,
        theta0_sha256=theta_sha,
        init_sha256=lineage.get("init_sha256"),
        study_hash=lineage.get("study_hash"),
        git_commit=lineage.get("git_commit"),
        next_mask_sha256=link.sha256 if is_ticket else None,
        mask_sha256=parent_sha if is_ticket else link.sha256,
        source_mask_sha256=None if is_ticket else parent_sha,
    )


def _cached(cache: dict[str, Any], key: str, fetch: Callable[[], Any]) -> Any:
    """`cache[key]`, fetched once; None when the store does not know it."""
    if key not in cache:
        import mlflow

        try:
            cache[key] = fetch()
        except mlflow.exceptions.MlflowException:
            cache[key] = None
    return cache[key]
