"""The study's experiment and parent run.

One experiment per study name; one parent run per study, named after the study (and the
DVC experiment, tag `lottery.dvc_exp_name`), found by the tag `lottery.study_key`: the
hash of every param but the study's name and its number of rounds, so a study whose
rounds grow keeps its parent. The parent is a container, not a process: it is never left
RUNNING. Its children are the stages' runs (`recorder`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lottery.core.io import project_root
from lottery.core.lineage import TAG  # prefix of every tag this project sets
from lottery.tracking.context import context_tags, flatten
from lottery.tracking.store import TrackingError

# MLflow loads after `lottery.tracking.store`, which sets its environment first.
# isort: split
import mlflow
from mlflow.entities import Param, RunTag

MAX_EXPERIMENT_NAME = 500  # MLflow's limit on an experiment name (study.name)
MAX_RUN_NAME = 250


def study_key(study_params: Mapping[str, Any]) -> str:
    """What finds a study's parent run: the hash of every param but the study's name and
    how many rounds it runs (`study.rounds`), so that a study whose rounds grow
    (`lottery rounds N`) stays under one parent."""
    d = dict(study_params)
    study = d.get("study")
    if isinstance(study, Mapping):
        d["study"] = {k: v for k, v in study.items() if k not in ("name", "rounds")}
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def parent_name(study: str, exp_name: str | None) -> str:
    """The parent run's name: the study's, and the DVC experiment's when it has one."""
    name = f"{study} ({exp_name})" if exp_name else study
    return name[:MAX_RUN_NAME]


def _parent_params(study_params: Mapping[str, Any]) -> dict[str, str]:
    """The params a parent logs once: all but those that change as its rounds grow
    (those are the tag `lottery.rounds`)."""
    flat = flatten(study_params)
    return {k: v for k, v in flat.items() if k != "study.rounds"}


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of the study's experiment `name` in the store at `uri` (created when there is
    none); a deleted one is a `TrackingError` saying how to restore it."""
    if len(name) > MAX_EXPERIMENT_NAME:
        raise TrackingError(
            f"study.name is {len(name)} characters long; it names the MLflow experiment, "
            f"which holds at most {MAX_EXPERIMENT_NAME}: shorten it in params.yaml."
        )
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage != "active":
            raise TrackingError(
                f"the MLflow experiment {name!r} (study.name) is deleted in {uri}: "
                f"restore it with `MLFLOW_TRACKING_URI={uri} mlflow experiments "
                f"restore --experiment-id {exp.experiment_id}`, or set another study.name "
                "in params.yaml. Nothing was recorded."
            )
        return str(exp.experiment_id)
    location = None
    if uri.startswith("sqlite:"):  # artifacts beside the local store, never in a temp dir
        location = (project_root() / "mlruns").as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel stage
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


class ParentRun:
    """Finds a study's parent run in its experiment, or creates it, and names and tags it
    for the stage recording now (`client`: an MlflowClient, or one that waits out outages)."""

    def __init__(
        self,
        client: Any,
        experiment: str,
        study_hash: str,
        study_params: Mapping[str, Any],
        exp_name: str | None,
    ) -> None:
        self.client, self.experiment_id = client, experiment
        self.study_hash, self.study_params = study_hash, study_params
        self.study_key = study_key(study_params)
        self.exp_name = exp_name

    def _find(self, tag: str, value: str) -> list[Any]:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG}{tag}` = '{value}' and tags.`{TAG}kind` = 'study'",
            order_by=["attributes.start_time ASC"],
        )
        return list(runs)

    def open(self, study: str) -> str:
        """The id of the study's parent run (created with its params when there is none),
        named and tagged for the stage recording now."""
        found = self._find("study_key", self.study_key)
        if not found:  # a parent of earlier code, found by the hash of all params
            found = self._find("study_hash", self.study_hash)
        if found:
            self._update(found[0], study)
            return str(found[0].info.run_id)
        tags = {**context_tags(), f"{TAG}kind": "study", **self.tags()}
        run = self.client.create_run(
            self.experiment_id, run_name=parent_name(study, self.exp_name), tags=tags
        )
        params = [Param(k, v) for k, v in _parent_params(self.study_params).items()]
        self.client.log_batch(run.info.run_id, params=params)
        # The parent is a container, not a process: never left "running".
        self.client.set_terminated(run.info.run_id, status="FINISHED")
        # Parallel stages may have created a parent at the same moment: keep the oldest.
        found = self._find("study_key", self.study_key)
        oldest = str(found[0].info.run_id)
        if oldest != run.info.run_id:
            self.client.delete_run(run.info.run_id)
        return oldest

    def tags(self) -> dict[str, str]:
        """The parent's tags that follow the study: its key, the hash of its latest params,
        its number of rounds, and the DVC experiment that recorded into it last."""
        tags = {f"{TAG}study_key": self.study_key, f"{TAG}study_hash": self.study_hash}
        study = self.study_params.get("study")
        if isinstance(study, Mapping) and "rounds" in study:
            tags[f"{TAG}rounds"] = str(study["rounds"])
        if self.exp_name:
            tags[f"{TAG}dvc_exp_name"] = self.exp_name
        return tags

    def _update(self, run: Any, study: str) -> None:
        tags = run.data.tags
        changed = {k: v for k, v in self.tags().items() if tags.get(k) != v}
        if changed:
            self.client.log_batch(
                run.info.run_id, tags=[RunTag(k, str(v)) for k, v in changed.items()]
            )
        exp_name = self.exp_name or tags.get(f"{TAG}dvc_exp_name")
        name = parent_name(study, exp_name)
        if run.info.run_name != name:
            self.client.update_run(run.info.run_id, name=name)
