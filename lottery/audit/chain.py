"""The chain check: walk a mask through its lineage sidecars to m_0 and θ0, checking
each link's file hash, its recorded place and parent, and the weights it names; each link
is handed to the DVC and MLflow checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lottery.audit.dvc import DvcLock
from lottery.audit.links import Expected, Link, Problem, add_problem
from lottery.audit.mlflow_runs import MlflowRuns
from lottery.audit.study import check_params, check_pruned_from, flat_params
from lottery.core import paths
from lottery.core.arch import LENET, Architecture
from lottery.core.lineage import read_record as read_lineage
from lottery.core.masks import MaskError, load_mask, load_weights, mask_hash, weights_hash
from lottery.core.params import Params


def expected_for(rel: str) -> Expected | None:
    """Where the file lies tells its round, trial, condition, stage and parent."""
    place = paths.parse_mask_path(rel)
    if place is None:
        return None
    t, rnd = place.trial, place.stage_round
    if rnd is None:
        return Expected(0, t, "ticket", "init", None)
    name = paths.round_name(rnd)
    parent = paths.round_mask_path(rnd, t).as_posix()
    if place.condition == "ticket":
        start = paths.theta0_path(t) if rnd == 0 else paths.rewind_path(t)
        stage = "dense" if rnd == 0 else f"ticket@{name}"
        return Expected(rnd + 1, t, "ticket", stage, parent, start=start.as_posix(), run_round=rnd)
    cond = place.condition
    if cond == "reinit":
        start = paths.start_weights_path(cond, name, paths.run_key(t, place.repeat))
    else:
        start = paths.rewind_path(t)
    return Expected(
        rnd,
        t,
        cond,
        f"{cond}@{name}",
        parent,
        repeat=place.repeat,
        start=start.as_posix(),
        run_round=rnd,
    )


def study_masks(params: Params) -> list[str]:
    """Every mask of the study: m_0 per trial, each ticket round's m_{k+1}, control masks."""
    out: list[str] = []
    trials = range(params.study.trials)
    for t in trials:
        out.append(paths.initial_mask_path(t).as_posix())
    for name in [paths.round_name(0), *params.pipeline.rounds]:
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


def _label(exp: Expected | None, rel: str) -> str:
    if exp is None:
        return Path(rel).name
    if exp.condition == "ticket":
        return f"m_{exp.round}"
    rep = f" repeat {exp.repeat}" if exp.repeat is not None else ""
    return f"{exp.condition} m_{exp.round}{rep}"


def _check_recorded_hash(link: Link, lineage: dict[str, Any], side: str) -> None:
    """The mask file's hash against the one its lineage sidecar records."""
    rec = lineage.get("sha256")
    link.recorded_sha256 = str(rec) if rec is not None else None
    if link.sha256 and link.sha256 != link.recorded_sha256:
        add_problem(
            link,
            "file",
            f"mask hashes to {link.sha256[:16]}…, its lineage {side} records "
            f"{str(link.recorded_sha256)[:16]}…: the mask file was changed or replaced",
        )


def _check_place(link: Link, lineage: dict[str, Any], exp: Expected | None, side: str) -> None:
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


def _check_named(
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


class Auditor:
    """Audits chains, caching each link, file md5 and MLflow run it has seen. Masks and
    weights are read as those of the study's network `arch` (`Params.architecture`);
    with `params`, each link is also checked to come from those params (`audit_study`)."""

    def __init__(
        self, root: Path, uri: str, arch: Architecture = LENET, params: Params | None = None
    ) -> None:
        self.root = root
        self.uri = uri
        self.arch = arch
        self.params = params
        self._flat = flat_params(params) if params is not None else {}
        self.links: dict[str, Link] = {}
        self.general: list[Problem] = []
        self.dvc = DvcLock(root, self.general)
        self.runs = MlflowRuns(uri, self.general, arch)
        self._weights: dict[str, str | None] = {}

    def weights_sha(self, link: Link, rel: str) -> str | None:
        if rel not in self._weights:
            try:
                weights = load_weights(self.root / rel, arch=self.arch)
                self._weights[rel] = weights_hash(weights, arch=self.arch)
            except MaskError as exc:
                self._weights[rel] = None
                add_problem(link, "file", str(exc))
        return self._weights[rel]

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
            add_problem(link, "lineage", f"{side}: unreadable ({exc})")
        if link.sha256 and link.recorded_sha256 and link.sha256 != link.recorded_sha256:
            add_problem(
                link,
                "file",
                f"θ0 file hashes to {link.sha256[:16]}…, {side} records "
                f"{link.recorded_sha256[:16]}…: θ0 was replaced",
            )
        link.stage = self.dvc.check(link, rel)
        self.dvc.check(link, side)
        return link

    def mask(self, rel: str) -> Link:
        """The link of mask `rel` (relative to the root), checked and chained to θ0."""
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
            link.sha256 = mask_hash(load_mask(path, arch=self.arch), arch=self.arch)
        except MaskError as exc:
            add_problem(link, "file", str(exc))
        try:
            lineage = read_lineage(path)
        except MaskError as exc:
            add_problem(link, "lineage", str(exc))
            return link
        side = path.with_suffix(".json").relative_to(self.root).as_posix()
        _check_recorded_hash(link, lineage, side)
        _check_place(link, lineage, exp, side)
        self._check_stage(link, lineage, side)
        parent_sha, has_parent = self._check_parent(link, lineage, exp, side)
        theta_sha = self._check_theta0(link, lineage, side, has_parent)
        if exp is not None and exp.start is not None:
            self._check_weights(link, lineage, exp.start, side)
        self.runs.check_run(link, lineage, exp, parent_sha, theta_sha)
        if self.params is not None:
            run = self.runs.get_run(link.run_id) if link.run_id and self.runs.client() else None
            keys = self.dvc.params.get(link.stage or "")
            check_params(link, lineage, run, keys, self.params, self._flat)
            check_pruned_from(link, lineage, exp, run, self.params, self.root, side)
        return link

    def _check_stage(self, link: Link, lineage: dict[str, Any], side: str) -> None:
        """The producing stage by dvc.lock (the mask and its sidecar are its outputs)."""
        link.stage = self.dvc.check(link, link.path)
        self.dvc.check(link, side)
        if link.stage and lineage.get("dvc_stage") not in (None, link.stage):
            add_problem(
                link,
                "dvc",
                f"dvc.lock says stage {link.stage} produced {link.path}, its lineage says "
                f"{lineage.get('dvc_stage')}",
            )
        link.stage = link.stage or lineage.get("dvc_stage")

    def _check_parent(
        self, link: Link, lineage: dict[str, Any], exp: Expected | None, side: str
    ) -> tuple[str | None, bool]:
        """Down the chain to the parent mask: its hash, and whether there is a parent.

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
            return None, False
        parent = self.mask(str(parent_rel))
        link.parent = parent.path
        _check_named(
            link, lineage, side, "parent_sha256", f"its parent {parent.path}", parent.sha256
        )
        return parent.sha256, True

    def _check_theta0(
        self, link: Link, lineage: dict[str, Any], side: str, has_parent: bool
    ) -> str | None:
        """The trial's θ0 (the chain's end when the mask has no parent mask): its hash."""
        if link.trial is None:
            return None
        theta = self.theta0(link.trial)
        if not has_parent:
            link.parent = theta.path
        _check_named(link, lineage, side, "theta0_sha256", theta.path, theta.sha256)
        return theta.sha256

    def _check_weights(self, link: Link, lineage: dict[str, Any], start: str, side: str) -> None:
        """The weights the network started from and ended with."""
        for key, wrel in (
            ("init_sha256", start),
            ("trained_sha256", (Path(link.path).parent / "trained.npz").as_posix()),
        ):
            _check_named(link, lineage, side, key, wrel, self.weights_sha(link, wrel))
            self.dvc.check(link, wrel)

    def problems(self) -> list[Problem]:
        out = list(self.general)
        recorded: dict[str, str] = {}  # mask hash -> the file whose lineage records it
        sides = paths.Layout(self.root).artifacts.rglob("*mask.json")
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
