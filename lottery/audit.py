"""`lottery audit`: walk masks back to θ0 and check that files, dvc.lock and MLflow agree.

For every mask audited (one file, or every mask of the study: m_0 from init, each ticket
round's `next_mask.npz`, each control's `mask.npz`) the chain is followed through the
lineage sidecars (`parent_path`) down to m_0 and θ0. Each link is checked three ways:

- the file: its canonical hash (`mask_hash` / `weights_hash`) against the hash its lineage
  JSON (or `theta0.json`) records, the parent's hash against the child's `parent_sha256`,
  θ0's hash against every link's `theta0_sha256`, the round/trial/condition/stage the
  lineage records against where the file lies, and the trained/start weights hashes;
- DVC: the md5 `dvc.lock` recorded for the stage output holding the file (a directory
  output's per-file md5s come from its `.dir` manifest in `.dvc/cache`) against the md5
  of the file on disk, and the stage that output belongs to against the lineage's stage;
- MLflow: the run the lineage names exists, is not deleted (its lifecycle stage, nor its
  experiment's), and FINISHED; its `lottery.*` tags (mask, parent mask, θ0, start
  weights, params hashes, stage, trial, round) agree with the files; the mask and
  lineage artifacts it logged equal the files on disk.

Every RUNNING run of the store is checked too: one whose owning process (`lottery.host`,
`.pid`, `.pid_start`) is gone is an orphan, a disagreement until `--repair` marks it
FAILED with the reason; one owned by another host is listed, since its process cannot be
checked from here.

Other finished runs of the same stage with the same result hash are reproductions (a
forced rerun makes new runs with the same hashes): reported, not errors.
Exit status: 0 when everything agrees, 1 naming each disagreement otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lottery import paths
from lottery.errors import UserError
from lottery.lineage import RunTags
from lottery.lineage import read_record as read_lineage
from lottery.masks import MaskError, load_mask, load_weights, mask_hash, weights_hash
from lottery.params import Params, load_params, read_yaml

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

OK, FAILED = 0, 1
_TICKET = re.compile(r"^artifacts/ticket/r(\d+)/t(\d+)/next_mask\.npz$")
_CONTROL = re.compile(r"^artifacts/(reinit|random)/r(\d+)/t(\d+)(?:r(\d+))?/mask\.npz$")
_INITIAL = re.compile(r"^artifacts/init/t(\d+)/mask\.npz$")


@dataclass
class Problem:
    """One disagreement: the file it concerns, which check, and what disagrees."""

    path: str
    check: str  # file | lineage | dvc | mlflow
    message: str


@dataclass
class Link:
    """One file of a chain: a mask (m_k or a control's mask) or θ0."""

    path: str
    kind: str  # "mask" | "theta0"
    label: str  # m_0, m_1, reinit m_1, random r01, θ0
    trial: int | None
    sha256: str | None = None  # computed from the file on disk
    recorded_sha256: str | None = None  # what its lineage / theta0.json records
    stage: str | None = None  # producing DVC stage
    run_id: str | None = None  # producing MLflow run
    parent: str | None = None  # next link towards θ0
    condition: str | None = None
    round: int | None = None
    reproductions: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Expected:
    """What a mask's place in the artifacts tree says its lineage must record."""

    round: int
    trial: int
    condition: str
    stage: str
    parent: str | None  # the mask it derives from (None: m_0, whose parent is θ0)
    repeat: int | None = None
    start: str | None = None  # the weights it was trained from
    run_round: int | None = None  # `lottery.round` of the producing run


def expected_for(rel: str) -> Expected | None:
    """Where the file lies tells its round, trial, condition, stage and parent."""
    if m := _INITIAL.match(rel):
        return Expected(0, int(m[1]), "ticket", "init", None)
    if m := _TICKET.match(rel):
        k, t = int(m[1]), int(m[2])
        name = f"r{k:02d}"
        start = paths.theta0_path(t) if k == 0 else paths.rewind_path(t)
        return Expected(
            k + 1,
            t,
            "ticket",
            "dense" if k == 0 else f"ticket@{name}",
            paths.round_mask_path(k, t).as_posix(),
            start=start.as_posix(),
            run_round=k,
        )
    if m := _CONTROL.match(rel):
        cond, k, t = m[1], int(m[2]), int(m[3])
        repeat = int(m[4]) if m[4] is not None else None
        key = paths.run_key(t, repeat)
        name = f"r{k:02d}"
        start = (
            paths.start_weights_path(cond, name, key) if cond == "reinit" else paths.rewind_path(t)
        )
        return Expected(
            k,
            t,
            cond,
            f"{cond}@{name}",
            paths.round_mask_path(k, t).as_posix(),
            repeat=repeat,
            start=start.as_posix(),
            run_round=k,
        )
    return None


def study_masks(params: Params) -> list[str]:
    """Every mask of the study: m_0 per trial, each ticket round's m_{k+1}, control masks."""
    out: list[str] = []
    trials = range(params.study.trials)
    for t in trials:
        out.append(paths.initial_mask_path(t).as_posix())
    for name in ["r00", *params.pipeline.rounds]:
        out += [paths.next_mask_path(name, t).as_posix() for t in trials]
    for name in params.pipeline.reinit_rounds:
        for t in trials:
            out += [
                paths.control_mask_path("reinit", name, paths.run_key(t, r)).as_posix()
                for r in range(params.controls.reinit_repeats)
            ]
    for name in params.pipeline.random_rounds:
        out += [
            paths.control_mask_path("random", name, paths.run_key(t)).as_posix() for t in trials
        ]
    return out


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _label(exp: Expected | None, rel: str) -> str:
    if exp is None:
        return Path(rel).name
    if exp.condition == "ticket":
        return f"m_{exp.round}"
    rep = f" repeat {exp.repeat}" if exp.repeat is not None else ""
    return f"{exp.condition} m_{exp.round}{rep}"


class Auditor:
    """Audits chains, caching each link, file md5 and MLflow run it has seen."""

    def __init__(self, root: Path, uri: str) -> None:
        self.root = root
        self.uri = uri
        self.links: dict[str, Link] = {}
        self.general: list[Problem] = []
        self._outs = self._read_lock()
        self._manifests: dict[str, dict[str, str] | None] = {}
        self._weights: dict[str, str | None] = {}
        self._dvc_checked: dict[str, str | None] = {}
        self._client: Any = None
        self._mlflow_error: str | None = None
        self._runs: dict[str, Any] = {}
        self._experiments: dict[str, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="lottery-audit-")

    # ------------------------------------------------------------------ helpers

    def problem(self, link: Link, check: str, message: str) -> None:
        # `dvc checkout <file>` refuses to replace a modified file: the fix needs --force.
        message = re.sub(r"`dvc checkout (?!--force)", "`dvc checkout --force ", message)
        link.problems.append(Problem(link.path, check, message))

    def _read_lock(self) -> list[tuple[str, str, str]]:
        """(stage, out path, md5) of every output dvc.lock records."""
        lock = self.root / "dvc.lock"
        if not lock.is_file():
            self.general.append(
                Problem(
                    "dvc.lock", "dvc", "no dvc.lock: the study has not been run with `dvc repro`"
                )
            )
            return []
        data = read_yaml(lock.read_text()) or {}
        outs = []
        for stage, entry in (data.get("stages") or {}).items():
            for out in entry.get("outs") or []:
                if "md5" in out:
                    outs.append((str(stage), str(out["path"]).rstrip("/"), str(out["md5"])))
        return outs

    def _manifest(self, md5: str) -> dict[str, str] | None:
        """relpath -> md5 of a directory output, from its `.dir` manifest in the DVC cache."""
        if md5 not in self._manifests:
            f = self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
            try:
                entries = json.loads(f.read_text())
                self._manifests[md5] = {str(e["relpath"]): str(e["md5"]) for e in entries}
            except (OSError, ValueError, KeyError, TypeError):
                self._manifests[md5] = None
        return self._manifests[md5]

    def check_dvc(self, link: Link, rel: str) -> str | None:
        """Compare a file's md5 with dvc.lock; return the stage whose output holds it.

        Each file is checked once; its problems go to the first link that reads it."""
        if rel not in self._dvc_checked:
            self._dvc_checked[rel] = self._check_dvc(link, rel)
        return self._dvc_checked[rel]

    def _check_dvc(self, link: Link, rel: str) -> str | None:
        if not self._outs:
            return None
        for stage, out, md5 in self._outs:
            if rel != out and not rel.startswith(out + "/"):
                continue
            if md5.endswith(".dir"):
                manifest = self._manifest(md5)
                if manifest is None:
                    self.problem(
                        link,
                        "dvc",
                        f"the DVC cache has no manifest {md5} of output {out} (stage {stage}); "
                        "`dvc fetch` it to check the files' md5s",
                    )
                    return stage
                recorded = manifest.get(rel[len(out) + 1 :])
            else:
                recorded = md5
            path = self.root / rel
            if recorded is None:
                self.problem(
                    link, "dvc", f"{rel} is not among the files dvc.lock records for stage {stage}"
                )
            elif not path.is_file():
                self.problem(link, "dvc", f"{rel} is missing (dvc.lock records md5 {recorded})")
            else:
                actual = md5_file(path)
                if actual != recorded:
                    self.problem(
                        link,
                        "dvc",
                        f"{rel} has md5 {actual}, dvc.lock (stage {stage}) records {recorded}: "
                        "the file changed after the stage ran; `dvc checkout --force "
                        f"{out}` restores the recorded version (discarding the change), "
                        f"`dvc repro -f -s {stage}` recomputes it",
                    )
            return stage
        self.problem(link, "dvc", f"{rel} is not an output of any stage in dvc.lock")
        return None

    def weights_sha(self, link: Link, rel: str) -> str | None:
        if rel not in self._weights:
            try:
                self._weights[rel] = weights_hash(load_weights(self.root / rel))
            except MaskError as exc:
                self._weights[rel] = None
                self.problem(link, "file", str(exc))
        return self._weights[rel]

    # ------------------------------------------------------------------ θ0

    def theta0(self, trial: int) -> Link:
        rel = paths.theta0_path(trial).as_posix()
        if rel in self.links:
            return self.links[rel]
        link = Link(rel, "theta0", "θ0", trial, condition=None, round=None)
        self.links[rel] = link
        link.sha256 = self.weights_sha(link, rel)
        side = paths.theta0_path(trial).with_suffix(".json").as_posix()
        try:
            record = json.loads((self.root / side).read_text())
            link.recorded_sha256 = str(record.get("sha256"))
        except (OSError, ValueError, AttributeError) as exc:
            self.problem(link, "lineage", f"{side}: unreadable ({exc})")
        if link.sha256 and link.recorded_sha256 and link.sha256 != link.recorded_sha256:
            self.problem(
                link,
                "file",
                f"θ0 file hashes to {link.sha256[:16]}…, {side} records "
                f"{link.recorded_sha256[:16]}…: θ0 was replaced",
            )
        link.stage = self.check_dvc(link, rel)
        self.check_dvc(link, side)
        return link

    # ------------------------------------------------------------------ masks

    def mask(self, rel: str) -> Link:
        if rel in self.links:
            return self.links[rel]
        exp = expected_for(rel)
        link = Link(
            rel,
            "mask",
            _label(exp, rel),
            exp.trial if exp else None,
            condition=exp.condition if exp else None,
            round=exp.round if exp else None,
        )
        self.links[rel] = link
        path = self.root / rel
        try:
            link.sha256 = mask_hash(load_mask(path))
        except MaskError as exc:
            self.problem(link, "file", str(exc))
        try:
            lineage = read_lineage(path)
        except MaskError as exc:
            self.problem(link, "lineage", str(exc))
            return link
        side = path.with_suffix(".json").relative_to(self.root).as_posix()
        rec = lineage.get("sha256")
        link.recorded_sha256 = str(rec) if rec is not None else None
        if link.sha256 and link.sha256 != link.recorded_sha256:
            self.problem(
                link,
                "file",
                f"mask hashes to {link.sha256[:16]}…, its lineage {side} records "
                f"{str(link.recorded_sha256)[:16]}…: the mask file was changed or replaced",
            )
        # Where the file lies vs what its lineage says.
        trial = lineage.get("trial")
        link.trial = trial if isinstance(trial, int) else link.trial
        link.condition = str(lineage.get("condition", link.condition))
        link.round = lineage.get("round", link.round)
        if exp is not None:
            for key, want in (
                ("round", exp.round),
                ("trial", exp.trial),
                ("condition", exp.condition),
                ("dvc_stage", exp.stage),
            ):
                if lineage.get(key) != want:
                    self.problem(
                        link,
                        "lineage",
                        f"{side} records {key} {lineage.get(key)!r}, but the file lies where "
                        f"{key} {want!r} belongs: a mask from elsewhere was put here",
                    )
            if exp.repeat is not None and lineage.get("repeat") != exp.repeat:
                self.problem(
                    link,
                    "lineage",
                    f"{side} records repeat {lineage.get('repeat')!r}, expected {exp.repeat}",
                )
        link.stage = self.check_dvc(link, rel)
        self.check_dvc(link, side)
        if link.stage and lineage.get("dvc_stage") not in (None, link.stage):
            self.problem(
                link,
                "dvc",
                f"dvc.lock says stage {link.stage} produced {rel}, its lineage says "
                f"{lineage.get('dvc_stage')}",
            )
        link.stage = link.stage or lineage.get("dvc_stage")
        # Down the chain: the parent mask, then θ0.
        # Follow the chain the layout defines (m_k trains round k, prunes to m_{k+1});
        # a lineage naming another parent is itself a disagreement.
        parent_rel = lineage.get("parent_path")
        parent_sha: str | None = None
        if exp is not None and exp.parent is not None:
            if parent_rel != exp.parent:
                self.problem(
                    link, "lineage", f"{side} names parent {parent_rel!r}, expected {exp.parent}"
                )
            parent_rel = exp.parent
        if parent_rel:
            parent = self.mask(str(parent_rel))
            link.parent = parent.path
            parent_sha = parent.sha256
            if parent_sha and lineage.get("parent_sha256") != parent_sha:
                self.problem(
                    link,
                    "lineage",
                    f"{side} records parent hash {str(lineage.get('parent_sha256'))[:16]}…, "
                    f"but its parent {parent.path} hashes to {parent_sha[:16]}…",
                )
        elif lineage.get("parent_sha256") is not None:
            self.problem(link, "lineage", f"{side} records a parent hash but no parent path")
        theta_sha: str | None = None
        if link.trial is not None:
            theta = self.theta0(link.trial)
            theta_sha = theta.sha256
            if not parent_rel:
                link.parent = theta.path
            if theta_sha and lineage.get("theta0_sha256") != theta_sha:
                self.problem(
                    link,
                    "lineage",
                    f"{side} records θ0 {str(lineage.get('theta0_sha256'))[:16]}…, but "
                    f"{theta.path} hashes to {theta_sha[:16]}…",
                )
        # The weights the network started from and ended with.
        if exp is not None and exp.start is not None:
            for key, wrel in (
                ("init_sha256", exp.start),
                ("trained_sha256", (Path(rel).parent / "trained.npz").as_posix()),
            ):
                got = self.weights_sha(link, wrel)
                if got and lineage.get(key) != got:
                    self.problem(
                        link,
                        "lineage",
                        f"{side} records {key} {str(lineage.get(key))[:16]}…, but {wrel} "
                        f"hashes to {got[:16]}…",
                    )
                self.check_dvc(link, wrel)
        self.check_run(link, lineage, exp, parent_sha, theta_sha)
        return link

    # ------------------------------------------------------------------ MLflow

    def client(self) -> Any:
        if self._client is None and self._mlflow_error is None:
            from lottery.tracking import TrackingError, check_reachable

            try:
                check_reachable(self.uri)
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri)
            except TrackingError as exc:
                self._mlflow_error = str(exc).split(". Start it")[0]
                self.general.append(Problem(self.uri, "mlflow", self._mlflow_error))
        return self._client

    def get_run(self, run_id: str) -> Any:
        if run_id not in self._runs:
            import mlflow

            try:
                self._runs[run_id] = self.client().get_run(run_id)
            except mlflow.exceptions.MlflowException:
                self._runs[run_id] = None
        return self._runs[run_id]

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
                self.problem(link, "lineage", "its lineage records no MLflow run id")
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
            self.problem(
                link,
                "mlflow",
                f"its lineage names MLflow run {run_id}, which does not exist in {self.uri}{hint}",
            )
            return
        link.reproductions = others
        self.check_run_state(link, run)
        tags = run.data.tags
        is_ticket = link.condition == "ticket"
        want = RunTags(
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
        for tag, value in want.as_tags().items():
            if tags.get(tag) != value:
                self.problem(
                    link,
                    "mlflow",
                    f"MLflow run {run_id} has tag {tag}={tags.get(tag)!r}, the files say {value!r}",
                )
        self.check_artifacts(link, run_id, lineage)

    def check_run_state(self, link: Link, run: Any) -> None:
        """Not deleted (nor its experiment), and FINISHED: else the run is not evidence."""
        from lottery.tracking import FAILURE_TAG, owner_state

        run_id = run.info.run_id
        if run.info.lifecycle_stage != "active":
            self.problem(
                link,
                "mlflow",
                f"MLflow run {run_id} is deleted (lifecycle stage {run.info.lifecycle_stage!r}): "
                f"restore it with `mlflow runs restore --run-id {run_id}` "
                "(with MLFLOW_TRACKING_URI set to this store), or rerun the stage "
                f"(`dvc repro -f -s {link.stage}`)",
            )
        exp = self.experiment(run.info.experiment_id)
        if exp is not None and exp.lifecycle_stage != "active":
            self.problem(
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
                "elsewhere": f"its process runs on host {tags.get('lottery.host')}, "
                "which this host cannot check",
            }[owner]
            self.problem(link, "mlflow", f"MLflow run {run_id} is RUNNING: {detail}")
            return
        why = tags.get(FAILURE_TAG)
        self.problem(
            link,
            "mlflow",
            f"MLflow run {run_id} has status {status}"
            + (f" ({why})" if why else "")
            + f": the files may come from an attempt that did not finish; `dvc repro -f -s "
            f"{link.stage}` redoes the stage",
        )

    def experiment(self, experiment_id: str) -> Any:
        if experiment_id not in self._experiments:
            import mlflow

            try:
                self._experiments[experiment_id] = self.client().get_experiment(experiment_id)
            except mlflow.exceptions.MlflowException:
                self._experiments[experiment_id] = None
        return self._experiments[experiment_id]

    def running(self, repair: bool) -> list[dict[str, Any]]:
        """Every RUNNING run of the store with its owner's state; orphans are problems
        (or, with `repair`, marked FAILED with the reason and listed as repaired)."""
        from lottery.tracking import mark_failed as tracking_mark_failed
        from lottery.tracking import orphan_reason, owner_state, running_runs

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
                self.problem(
                    link, "mlflow", f"cannot download artifact {art} of run {run_id}: {exc}"
                )
                continue
            if art.endswith(".npz"):
                try:
                    got = mask_hash(load_mask(local))
                except MaskError as exc:
                    self.problem(link, "mlflow", f"artifact {art} of run {run_id}: {exc}")
                    continue
                on_disk = link.sha256 or link.recorded_sha256
                if got != on_disk:
                    self.problem(
                        link,
                        "mlflow",
                        f"MLflow artifact {art} of run {run_id} hashes to {got[:16]}…, the "
                        f"file on disk to {str(on_disk)[:16]}…: they differ",
                    )
            else:
                try:
                    record = json.loads(local.read_text())
                except ValueError as exc:
                    self.problem(link, "mlflow", f"artifact {art} of run {run_id}: {exc}")
                    continue
                diff = sorted(
                    k for k in set(record) | set(lineage) if record.get(k) != lineage.get(k)
                )
                if diff:
                    self.problem(
                        link,
                        "mlflow",
                        f"MLflow artifact {art} of run {run_id} differs from the lineage on "
                        f"disk in {', '.join(diff)}",
                    )

    # ------------------------------------------------------------------ results

    def problems(self) -> list[Problem]:
        out = list(self.general)
        recorded: dict[str, str] = {}  # mask hash -> the file whose lineage records it
        sides = (self.root / paths.ARTIFACTS).rglob("*mask.json")
        for side in sorted(sides, key=lambda f: ("/ticket/" not in f.as_posix(), f)):
            try:
                sha = json.loads(side.read_text()).get("sha256")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(sha, str):
                rel = side.with_suffix(".npz").relative_to(self.root).as_posix()
                recorded.setdefault(sha, rel)
        for lk in self.links.values():
            if lk.recorded_sha256 and lk.kind == "mask":
                recorded[lk.recorded_sha256] = lk.path
        for lk in self.links.values():
            for p in lk.problems:
                if (
                    p.check == "file"
                    and lk.sha256
                    and recorded.get(lk.sha256) not in (None, lk.path)
                ):
                    p.message += f" (it is the mask recorded for {recorded[lk.sha256]})"
                out.append(p)
        return out

    def chain(self, rel: str) -> list[str]:
        out = [rel]
        while (nxt := self.links[out[-1]].parent) is not None and nxt not in out:
            out.append(nxt)
        return out


# ---------------------------------------------------------------------- output


def _line(link: Link) -> str:
    sha = link.sha256[:16] if link.sha256 else "unreadable"
    run = f"run {link.run_id}" if link.run_id else "run -"
    status = "ok" if not link.problems else f"{len(link.problems)} problem(s)"
    return f"{link.label}  {link.path}  sha256 {sha}  stage {link.stage or '?'}  {run}  {status}"


def render(result: dict[str, Any], auditor: Auditor) -> str:
    """The audited links as trees from each θ0, then problems and a verdict."""
    links = auditor.links
    children: dict[str | None, list[str]] = {}
    for lk in links.values():
        children.setdefault(lk.parent, []).append(lk.path)

    def order(rel: str) -> tuple[int, int, str]:
        lk = links[rel]
        return (lk.round or 0, {"reinit": 0, "random": 1}.get(lk.condition or "", 2), rel)

    lines = [f"audit of {len(result['targets'])} mask(s) in {result['root']}"]
    lines.append(f"MLflow: {result['tracking_uri']}")

    def walk(rel: str, prefix: str, last: bool, top: bool) -> None:
        lk = links[rel]
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(prefix + branch + _line(lk))
        inner = prefix + ("" if top else ("   " if last else "│  "))
        for run in lk.reproductions:
            lines.append(inner + f"   reproduction: run {run} (same stage, same hash)")
        kids = sorted(children.get(rel, []), key=order)
        for i, kid in enumerate(kids):
            walk(kid, inner, i == len(kids) - 1, False)

    roots = sorted(rel for rel, lk in links.items() if lk.parent is None)
    for rel in roots:
        lines.append("")
        walk(rel, "", True, True)
    lines.append("")
    for entry in result.get("running", []):
        state = {
            "alive": "in progress",
            "gone": "ORPHAN (process gone)",
            "elsewhere": f"on host {entry['host']}: not checkable from here",
        }[entry["owner"]]
        done = "; marked FAILED (--repair)" if entry["repaired"] else ""
        lines.append(
            f"RUNNING run {entry['run_id']} ({entry['run_name']}, stage {entry['stage']}, "
            f"pid {entry['pid']}): {state}{done}"
        )
    probs = result["problems"]
    if probs:
        lines.append(f"FAILED: {len(probs)} disagreement(s):")
        lines += [f"  - {p['path']} [{p['check']}]: {p['message']}" for p in probs]
    else:
        n_rep = sum(len(lk.reproductions) for lk in links.values())
        rep = f"; {n_rep} reproduction run(s)" if n_rep else ""
        lines.append(f"OK: {len(links)} links agree: files, lineage, dvc.lock and MLflow{rep}.")
    return "\n".join(lines)


def audit(
    target: str | None,
    params_file: str | Path = "params.yaml",
    root: Path | None = None,
    repair: bool = False,
) -> tuple[dict[str, Any], Auditor]:
    """Audit `target` (a mask path, relative to the current directory) or every mask.

    `params_file` relative paths are read from the current directory; `root` defaults to
    the project holding it. With `repair`, orphaned RUNNING runs are first marked FAILED."""
    from lottery.tracking import project_root, tracking_uri

    root = root or project_root()
    if target is None:
        params_path = Path(params_file)
        if not params_path.is_absolute():
            params_path = Path.cwd() / params_path
        targets = study_masks(load_params(params_path))
    else:
        p = Path(target)
        p = p.resolve() if p.is_absolute() else (Path.cwd() / p).resolve()
        try:
            targets = [p.relative_to(root).as_posix()]
        except ValueError:
            raise UserError(f"{target} is not inside the project {root}") from None
        if not p.is_file():
            raise UserError(f"{target}: no such mask file")
    auditor = Auditor(root, tracking_uri())
    running = auditor.running(repair) if auditor.client() is not None else []
    try:
        for rel in targets:
            auditor.mask(rel)
    finally:
        auditor._tmp.cleanup()
    problems = auditor.problems()
    result = {
        "ok": not problems,
        "root": str(root),
        "tracking_uri": auditor.uri,
        "targets": targets,
        "chains": {rel: auditor.chain(rel) for rel in targets},
        "links": [
            {k: v for k, v in asdict(lk).items() if k != "problems"}
            for lk in auditor.links.values()
        ],
        "reproductions": {
            lk.path: lk.reproductions for lk in auditor.links.values() if lk.reproductions
        },
        "running": running,
        "problems": [asdict(p) for p in problems],
    }
    return result, auditor


def main(
    target: str | None,
    as_json: bool = False,
    params_file: str | Path = "params.yaml",
    root: Path | None = None,
    repair: bool = False,
) -> int:
    result, auditor = audit(target, params_file, root, repair)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render(result, auditor))
    return OK if result["ok"] else FAILED
