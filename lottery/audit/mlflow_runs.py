"""The MLflow check: the run a lineage names exists, is live, FINISHED, and its tags and
artifacts equal the files.

`RunStore` opens the store once and caches what it fetches; `RunCheck` checks one link's
run: its state (`state_problems`), its tags (`tag_problems` against `expected_tags`) and,
through `ArtifactCheck`, the mask and lineage it logged. Each returns its findings as
messages; `RunCheck` records them on the link. The store-wide sweep of RUNNING runs is
`lottery.audit.orphans`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lottery.audit.links import Expected, Link, Problem, add_problem, add_problems
from lottery.audit.places import prunes
from lottery.core.arch import Architecture
from lottery.core.lineage import RunTags
from lottery.core.machine import trained_on
from lottery.core.masks import MaskError, load_mask, mask_hash


class RunStore:
    """The MLflow store at `uri`, opened on first use, with the runs and experiments fetched
    from it cached. A store that cannot be opened is one problem in `general`; `client()`
    is None from then on."""

    def __init__(self, uri: str, general: list[Problem]) -> None:
        self.uri = uri
        self.general = general
        self._client: Any = None
        self._error: str | None = None
        self._runs: dict[str, Any] = {}
        self._experiments: dict[str, Any] = {}

    def client(self) -> Any:
        """The store's `MlflowClient` (None when it cannot be reached)."""
        if self._client is None and self._error is None:
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
                self._error = str(exc).split(". Start it")[0]
                self.general.append(Problem(self.uri, "mlflow", self._error))
        return self._client

    def get_run(self, run_id: str) -> Any:
        """Run `run_id` (None when the store does not know it)."""
        return _cached(self._runs, run_id, lambda: self.client().get_run(run_id))

    def experiment(self, experiment_id: str) -> Any:
        """Experiment `experiment_id` (None when the store does not know it)."""
        return _cached(
            self._experiments, experiment_id, lambda: self.client().get_experiment(experiment_id)
        )

    def search(self, filter_string: str) -> list[Any]:
        """The runs of every experiment that match `filter_string` (at most 1000)."""
        client = self.client()
        exps = [e.experiment_id for e in client.search_experiments()]
        return list(client.search_runs(exps, filter_string=filter_string, max_results=1000))


def _cached(cache: dict[str, Any], key: str, fetch: Callable[[], Any]) -> Any:
    """`cache[key]`, fetched once; None when the store does not know it."""
    if key not in cache:
        import mlflow

        try:
            cache[key] = fetch()
        except mlflow.exceptions.MlflowException:
            cache[key] = None
    return cache[key]


class ArtifactCheck:
    """The mask and lineage a run logged (`mask/<name>.npz`, `mask/<name>.json`), downloaded
    into a temporary folder and compared with the files on disk; masks are read as those
    of network `arch`."""

    def __init__(self, store: RunStore, arch: Architecture) -> None:
        self.store = store
        self.arch = arch
        self._tmp = tempfile.TemporaryDirectory(prefix="lottery-audit-")

    def cleanup(self) -> None:
        """Remove the downloaded artifacts."""
        self._tmp.cleanup()

    def problems(self, link: Link, run_id: str, lineage: dict[str, Any]) -> list[str]:
        """Where the artifacts of run `run_id` differ from `link`'s mask and `lineage`."""
        name = Path(link.path).name
        dst = Path(self._tmp.name) / run_id
        dst.mkdir(exist_ok=True)
        found: list[str] = []
        for art in (f"mask/{name}", f"mask/{Path(name).with_suffix('.json')}"):
            try:
                local = Path(self.store.client().download_artifacts(run_id, art, str(dst)))
            except Exception as exc:  # missing artifact, unreachable artifact store
                found.append(f"cannot download artifact {art} of run {run_id}: {exc}")
                continue
            where = f"artifact {art} of run {run_id}"
            if art.endswith(".npz"):
                found += self._mask(local, where, link.sha256 or link.recorded_sha256)
            else:
                found += _lineage(local, where, lineage)
        return found

    def _mask(self, local: Path, where: str, on_disk: str | None) -> list[str]:
        """The logged mask's hash against `on_disk`, the hash of the mask file."""
        try:
            got = mask_hash(load_mask(local, arch=self.arch), arch=self.arch)
        except MaskError as exc:
            return [f"{where}: {exc}"]
        if got == on_disk:
            return []
        return [
            f"MLflow {where} hashes to {got[:16]}…, the file on disk to {str(on_disk)[:16]}…: "
            "they differ"
        ]


def _lineage(local: Path, where: str, lineage: dict[str, Any]) -> list[str]:
    """The logged lineage against the one on disk, key by key."""
    try:
        record = json.loads(local.read_text())
    except ValueError as exc:
        return [f"{where}: {exc}"]
    diff = sorted(k for k in set(record) | set(lineage) if record.get(k) != lineage.get(k))
    if not diff:
        return []
    return [f"MLflow {where} differs from the lineage on disk in {', '.join(diff)}"]


class RunCheck:
    """The MLflow check of one link: the run its lineage names (recorded on the link as
    `run_id`, other finished runs with the same result as its `reproductions`) exists and
    is evidence, and its tags and artifacts agree with the files."""

    def __init__(self, store: RunStore, arch: Architecture) -> None:
        self.store = store
        self.artifacts = ArtifactCheck(store, arch)

    def cleanup(self) -> None:
        """Remove the downloaded artifacts."""
        self.artifacts.cleanup()

    def check(
        self,
        link: Link,
        lineage: dict[str, Any],
        exp: Expected | None,
        parent_sha: str | None,
        theta_sha: str | None,
    ) -> None:
        """Check the run that made `link` (`parent_sha`, `theta_sha`: the hashes of its
        parent mask and θ0), recording what disagrees on the link."""
        run_id = lineage.get("mlflow_run_id")
        if not run_id:
            if link.stage != "init":
                add_problem(link, "lineage", "its lineage records no MLflow run id")
            return
        link.run_id = str(run_id)
        if self.store.client() is None:
            return
        filt = reproduction_filter(link, exp)
        found = self.store.search(filt) if filt else []
        others = [r.info.run_id for r in found if r.info.run_id != run_id]
        run = self.store.get_run(link.run_id)
        if run is None:
            hint = f" (runs with the same result: {', '.join(others)})" if others else ""
            add_problem(
                link,
                "mlflow",
                f"its lineage names MLflow run {run_id}, which does not exist in "
                f"{self.store.uri}{hint}",
            )
            return
        link.reproductions = others
        tags = run.data.tags
        link.machine = trained_on(
            tags.get("lottery.cpu"), tags.get("lottery.threads"), tags.get("lottery.device")
        )
        experiment = self.store.experiment(run.info.experiment_id)
        add_problems(link, "mlflow", state_problems(run, experiment, link.stage))
        want = expected_tags(link, lineage, exp, parent_sha, theta_sha)
        add_problems(link, "mlflow", tag_problems(run, want))
        add_problems(link, "mlflow", self.artifacts.problems(link, link.run_id, lineage))


def reproduction_filter(link: Link, exp: Expected | None) -> str | None:
    """The MLflow search for finished runs of `link`'s stage and trial that produced the
    same hash (None when the link's hash or stage is unknown)."""
    if not link.sha256 or link.stage is None:
        return None
    key = "next_mask_sha256" if prunes(link.condition) else "mask_sha256"
    filt = (
        f"tags.`lottery.{key}` = '{link.sha256}' and tags.`lottery.dvc_stage` = '{link.stage}'"
        f" and tags.`lottery.condition` = '{link.condition}'"
        f" and attributes.status = 'FINISHED'"
    )
    if link.trial is not None:
        filt += f" and tags.`lottery.trial` = '{link.trial}'"
    if exp is not None and exp.repeat is not None:
        filt += f" and tags.`lottery.repeat` = '{exp.repeat}'"
    return filt


def state_problems(run: Any, experiment: Any, stage: str | None) -> list[str]:
    """Why `run` (of `experiment`, made by DVC stage `stage`) is no evidence: it or its
    experiment is deleted, or it is not FINISHED."""
    from lottery.tracking.owners import FAILURE_TAG

    run_id = run.info.run_id
    found = []
    if run.info.lifecycle_stage != "active":
        found.append(
            f"MLflow run {run_id} is deleted (lifecycle stage {run.info.lifecycle_stage!r}): "
            f"restore it with `mlflow runs restore --run-id {run_id}` "
            "(with MLFLOW_TRACKING_URI set to this store), or rerun the stage "
            f"(`dvc repro -f -s {stage}`)"
        )
    if experiment is not None and experiment.lifecycle_stage != "active":
        found.append(
            f"MLflow run {run_id} belongs to the deleted experiment {experiment.name!r}: restore "
            f"it with `mlflow experiments restore --experiment-id {experiment.experiment_id}`"
        )
    status = run.info.status
    if status == "RUNNING":
        found.append(f"MLflow run {run_id} is RUNNING: {_running(run.data.tags, stage)}")
    elif status != "FINISHED":
        why = run.data.tags.get(FAILURE_TAG)
        found.append(
            f"MLflow run {run_id} has status {status}"
            + (f" ({why})" if why else "")
            + f": the files may come from an attempt that did not finish; `dvc repro -f -s "
            f"{stage}` redoes the stage"
        )
    return found


def _running(tags: dict[str, str], stage: str | None) -> str:
    """What a RUNNING run's owner state (from its tags) means for its files."""
    from lottery.tracking.owners import owner_state, where

    return {
        "alive": "its stage is still running",
        "gone": "its process is gone (an orphan): `lottery audit --repair` marks it "
        "FAILED, then `dvc repro -f -s " + str(stage) + "` redoes the stage",
        "elsewhere": f"its process runs on {where(tags)}, which cannot be checked from here",
    }[owner_state(tags)]


def tag_problems(run: Any, want: RunTags) -> list[str]:
    """Each `lottery.*` tag of `want` that `run` lacks or carries with another value."""
    tags = run.data.tags
    return [
        f"MLflow run {run.info.run_id} has tag {tag}={tags.get(tag)!r}, the files say {value!r}"
        for tag, value in want.as_tags().items()
        if tags.get(tag) != value
    ]


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
    is_ticket = prunes(link.condition)
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
