"""The chain check: walk a mask through its lineage sidecars to m_0 and θ0, each link once,
checking each link's file hash, its recorded place and parent, and the weights it names;
each link is handed to the DVC, MLflow and study checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from lottery.audit.dvc import DvcLock
from lottery.audit.links import Expected, Link, Problem, add_problem
from lottery.audit.mlflow_runs import RunCheck, RunStore
from lottery.audit.places import expected_for, label
from lottery.audit.study import check_params, check_pruned_from, flat_params
from lottery.core import paths
from lottery.core.arch import Architecture
from lottery.core.lineage import read_record as read_lineage
from lottery.core.masks import MaskError, load_mask, load_weights, mask_hash, weights_hash
from lottery.core.params import Params


def check_recorded(link: Link, side: str, what: str, why: str) -> None:
    """The link's file hash against the one its sidecar records (`side`: how the message
    names the sidecar, `what`: the file, `why`: what a difference means)."""
    if link.sha256 and link.sha256 != link.recorded_sha256:
        add_problem(
            link,
            "file",
            f"{what} hashes to {link.sha256[:16]}…, {side} records "
            f"{str(link.recorded_sha256)[:16]}…: {why}",
        )


def check_place(link: Link, lineage: dict[str, Any], exp: Expected | None, side: str) -> None:
    """Where the file lies against what its lineage says (the link takes the lineage's)."""
    trial = lineage.get("trial")
    link.trial = trial if isinstance(trial, int) else link.trial
    link.condition = str(lineage.get("condition", link.condition))
    link.round = lineage.get("round", link.round)
    if exp is None:
        return
    for key, want in (
        ("round", exp.round),
        ("trial", exp.trial),
        ("condition", exp.condition),
        ("dvc_stage", exp.stage),
    ):
        if lineage.get(key) != want:
            add_problem(
                link,
                "lineage",
                f"{side} records {key} {lineage.get(key)!r}, but the file lies where "
                f"{key} {want!r} belongs: a mask from elsewhere was put here",
            )
    if exp.repeat is not None and lineage.get("repeat") != exp.repeat:
        add_problem(
            link,
            "lineage",
            f"{side} records repeat {lineage.get('repeat')!r}, expected {exp.repeat}",
        )


#: How a problem message names a hash its lineage records (default: the field's name).
_NAMED = {"parent_sha256": "parent hash", "theta0_sha256": "θ0"}


def check_named(
    link: Link, lineage: dict[str, Any], side: str, key: str, named: str, got: str | None
) -> None:
    """The hash `side` records under `key` against `got`, the hash of the file it names."""
    if got and lineage.get(key) != got:
        add_problem(
            link,
            "lineage",
            f"{side} records {_NAMED.get(key, key)} {str(lineage.get(key))[:16]}…, but "
            f"{named} hashes to {got[:16]}…",
        )


def check_stage(dvc: DvcLock, link: Link, lineage: dict[str, Any], side: str) -> None:
    """The producing stage by dvc.lock (the mask and its sidecar are its outputs) against
    the lineage's; the link takes dvc.lock's, else the lineage's."""
    link.stage = dvc.check(link, link.path)
    dvc.check(link, side)
    if link.stage and lineage.get("dvc_stage") not in (None, link.stage):
        add_problem(
            link,
            "dvc",
            f"dvc.lock says stage {link.stage} produced {link.path}, its lineage says "
            f"{lineage.get('dvc_stage')}",
        )
    link.stage = link.stage or lineage.get("dvc_stage")


class LinkChecks:
    """The checks of one mask link against its lineage, before and after the walk reaches
    its parent: recorded hash, place and stage; then the weights it started from and ended
    with, the MLflow run that made it and (with `params`) the params it was made with.
    Files are read as those of network `arch`; each weights file is hashed once."""

    def __init__(
        self, root: Path, arch: Architecture, params: Params | None, dvc: DvcLock, runs: RunCheck
    ) -> None:
        self.root = root
        self.arch = arch
        self.params = params
        self.dvc = dvc
        self.runs = runs
        self._flat = flat_params(params) if params is not None else {}
        self._weights: dict[str, str | None] = {}

    def mask_sha(self, link: Link) -> str | None:
        """The canonical hash of the mask file of `link` (None, a problem: unreadable)."""
        try:
            return mask_hash(load_mask(self.root / link.path, arch=self.arch), arch=self.arch)
        except MaskError as exc:
            add_problem(link, "file", str(exc))
            return None

    def weights_sha(self, link: Link, rel: str) -> str | None:
        """The canonical hash of weights file `rel` (None, a problem of the first link that
        reads it: unreadable)."""
        if rel not in self._weights:
            try:
                weights = load_weights(self.root / rel, arch=self.arch)
                self._weights[rel] = weights_hash(weights, arch=self.arch)
            except MaskError as exc:
                self._weights[rel] = None
                add_problem(link, "file", str(exc))
        return self._weights[rel]

    def record(self, link: Link, lineage: dict[str, Any], exp: Expected | None, side: str) -> None:
        """What the lineage `side` records of the mask itself: its hash, place and stage."""
        rec = lineage.get("sha256")
        link.recorded_sha256 = str(rec) if rec is not None else None
        why = "the mask file was changed or replaced"
        check_recorded(link, f"its lineage {side}", "mask", why)
        check_place(link, lineage, exp, side)
        check_stage(self.dvc, link, lineage, side)

    def origin(
        self,
        link: Link,
        lineage: dict[str, Any],
        exp: Expected | None,
        side: str,
        hashes: tuple[str | None, str | None],
    ) -> None:
        """How the mask was made: from which weights, by which MLflow run, with which params
        (`hashes`: its parent mask's and θ0's)."""
        if exp is not None and exp.start is not None:
            trained = (Path(link.path).parent / "trained.npz").as_posix()
            for key, wrel in (("init_sha256", exp.start), ("trained_sha256", trained)):
                check_named(link, lineage, side, key, wrel, self.weights_sha(link, wrel))
                self.dvc.check(link, wrel)
        self.runs.check(link, lineage, exp, *hashes)
        if self.params is not None:
            store = self.runs.store
            run = store.get_run(link.run_id) if link.run_id and store.client() else None
            keys = self.dvc.params.get(link.stage or "")
            check_params(link, lineage, run, keys, self.params, self._flat)
            check_pruned_from(link, lineage, exp, run, self.params, self.root, side)


class Auditor:
    """Walks masks down their chains to θ0, auditing each link once (`LinkChecks`) and
    keeping them in `links`, in the order first reached. Masks and weights are read as
    those of the study's network `arch` (`Params.architecture`); with `params`, each link
    is also checked to come from those params (`lottery.audit.study`)."""

    def __init__(
        self, root: Path, uri: str, arch: Architecture, params: Params | None = None
    ) -> None:
        self.root = root
        self.links: dict[str, Link] = {}
        self.general: list[Problem] = []
        self.dvc = DvcLock(root, self.general)
        self.store = RunStore(uri, self.general)
        self.checks = LinkChecks(root, arch, params, self.dvc, RunCheck(self.store, arch))

    def cleanup(self) -> None:
        """Remove what the audit downloaded."""
        self.checks.runs.cleanup()

    def theta0(self, trial: int) -> Link:
        """The link of the θ0 of `trial`, checked against `theta0.json` and dvc.lock."""
        rel = paths.theta0_path(trial).as_posix()
        if rel in self.links:
            return self.links[rel]
        link = self.links[rel] = Link(rel, "theta0", "θ0", trial)
        link.sha256 = self.checks.weights_sha(link, rel)
        side = paths.theta0_path(trial).with_suffix(".json").as_posix()
        try:
            record = json.loads((self.root / side).read_text())
            link.recorded_sha256 = str(record.get("sha256"))
        except (OSError, ValueError, AttributeError) as exc:
            add_problem(link, "lineage", f"{side}: unreadable ({exc})")
        else:
            check_recorded(link, side, "θ0 file", "θ0 was replaced")
        link.stage = self.dvc.check(link, rel)
        self.dvc.check(link, side)
        return link

    def mask(self, rel: str) -> Link:
        """The link of mask `rel` (relative to the root), checked and chained to θ0."""
        if rel in self.links:
            return self.links[rel]
        exp = expected_for(rel)
        link = self.links[rel] = Link(rel, "mask", label(exp, rel), exp.trial if exp else None)
        link.condition, link.round = (exp.condition, exp.round) if exp else (None, None)
        link.sha256 = self.checks.mask_sha(link)
        try:
            lineage = read_lineage(self.root / rel)
        except MaskError as exc:
            add_problem(link, "lineage", str(exc))
            return link
        side = (self.root / rel).with_suffix(".json").relative_to(self.root).as_posix()
        self.checks.record(link, lineage, exp, side)
        parent_sha = self._parent(link, lineage, exp, side)
        theta_sha = None
        if link.trial is not None:  # every link names its θ0, the parent of m_0
            theta = self.theta0(link.trial)
            link.parent = link.parent or theta.path
            check_named(link, lineage, side, "theta0_sha256", theta.path, theta.sha256)
            theta_sha = theta.sha256
        self.checks.origin(link, lineage, exp, side, (parent_sha, theta_sha))
        return link

    def _parent(
        self, link: Link, lineage: dict[str, Any], exp: Expected | None, side: str
    ) -> str | None:
        """Down the chain to the parent mask (`link.parent`, None for m_0): its hash.

        The chain followed is the one the layout defines (m_k trains round k, prunes to
        m_{k+1}); a lineage naming another parent is itself a disagreement."""
        parent_rel = lineage.get("parent_path")
        if exp is not None and exp.parent is not None:
            if parent_rel != exp.parent:
                add_problem(
                    link, "lineage", f"{side} names parent {parent_rel!r}, expected {exp.parent}"
                )
            parent_rel = exp.parent
        if not parent_rel:
            if lineage.get("parent_sha256") is not None:
                add_problem(link, "lineage", f"{side} records a parent hash but no parent path")
            return None
        parent = self.mask(str(parent_rel))
        link.parent = parent.path
        check_named(
            link, lineage, side, "parent_sha256", f"its parent {parent.path}", parent.sha256
        )
        return parent.sha256

    def problems(self) -> list[Problem]:
        """Every disagreement found (see `audit_problems`)."""
        return audit_problems(self.root, self.links, self.general)

    def chain(self, rel: str) -> list[str]:
        """The links from `rel` down to its θ0."""
        out = [rel]
        while (nxt := self.links[out[-1]].parent) is not None and nxt not in out:
            out.append(nxt)
        return out


def audit_problems(root: Path, links: dict[str, Link], general: list[Problem]) -> list[Problem]:
    """The general problems, then each link's, in the order the links were reached. A file
    problem of a mask whose hash a sidecar records for another file names that file: the
    artifacts tree is walked (once) only when there is such a problem to name."""
    recorded: dict[str, str] | None = None
    out = list(general)
    for lk in links.values():
        for p in lk.problems:
            if p.check == "file" and lk.sha256:
                recorded = recorded_masks(root, links) if recorded is None else recorded
                other = recorded.get(lk.sha256)
                if other not in (None, lk.path):
                    p = replace(p, message=f"{p.message} (it is the mask recorded for {other})")
            out.append(p)
    return out


def recorded_masks(root: Path, links: dict[str, Link]) -> dict[str, str]:
    """Mask hash -> the mask whose lineage records it: an audited link's, else the first
    sidecar of the artifacts tree that records it (a ticket's before a control's)."""
    recorded: dict[str, str] = {}
    sides = paths.Layout(root).artifacts.rglob("*mask.json")
    for side in sorted(sides, key=lambda f: ("/ticket/" not in f.as_posix(), f)):
        try:
            sha = json.loads(side.read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(sha, str):
            recorded.setdefault(sha, side.with_suffix(".npz").relative_to(root).as_posix())
    for lk in links.values():
        if lk.recorded_sha256 and lk.kind == "mask":
            recorded[lk.recorded_sha256] = lk.path
    return recorded
