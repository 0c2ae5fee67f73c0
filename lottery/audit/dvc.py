"""The DVC check: a file's md5 against what dvc.lock records for the output holding it.

A directory output's per-file md5s come from its `.dir` manifest, found in DVC's cache
through DVC itself (so a cache moved with `dvc cache dir` is found too). Without the
manifest (`dvc gc`, a fresh clone before `dvc pull`) the directory's own hash, computed
as DVC computes it, is checked against dvc.lock instead: equal, every file of it agrees;
different, the output is named once, with the way to get the manifest (`dvc fetch`) when
a remote holds it.

A dvc.lock that records no output at all (empty, or `stages: {}`) is a disagreement: every
file of the study is then unchecked. One that cannot be read is a `UserError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lottery.audit.links import Link, Problem, add_problems
from lottery.core.errors import UserError
from lottery.core.io import read_yaml

_RESTORE = (
    "restore it from git (`git checkout dvc.lock`), or without a good copy "
    "`rm dvc.lock && dvc repro` recomputes the study"
)


def md5_file(path: Path) -> str:
    """The md5 of a file's bytes, as DVC records it in dvc.lock."""
    h = hashlib.md5(usedforsecurity=False)  # DVC's content hash, not a security measure
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _yaml_problem(exc: Exception) -> str:
    """A YAML parser's error in a few words, with the line and column it names."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def flat_keys(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of the leaves of a dvc.lock `params` entry: `train: {a: 1}` and
    `study.seed: 0` give `train.a` and `study.seed`."""
    out: list[str] = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flat_keys(value, name + ".")
        else:
            out.append(name)
    return out


@dataclass
class LockRecord:
    """What dvc.lock records: every output with an md5, and each stage's params keys."""

    outs: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, out path, md5)
    params: dict[str, list[str]] = field(default_factory=dict)  # stage -> dotted param keys


def read_lock(root: Path, general: list[Problem]) -> LockRecord:
    """The record of `root/dvc.lock`; a missing or empty one is a problem in `general`, one
    that is not DVC's YAML a `UserError`."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        general.append(
            Problem("dvc.lock", "dvc", "no dvc.lock: the study has not been run with `dvc repro`")
        )
        return LockRecord()
    try:
        data = read_yaml(lock.read_text())
    except Exception as exc:  # ruamel's YAMLError, a decoding error
        raise UserError(f"{lock}: not valid YAML ({_yaml_problem(exc)}); {_RESTORE}.") from None
    record = parse_lock(lock, data)
    if not record.outs:
        general.append(
            Problem(
                "dvc.lock",
                "dvc",
                "dvc.lock records no stage output (it is empty): no file of the study can "
                "be checked against it; `git checkout dvc.lock` restores the recorded one, "
                "`dvc repro` records the study anew",
            )
        )
    return record


def parse_lock(lock: Path, data: Any) -> LockRecord:
    """The record of a parsed dvc.lock (`data` None: an empty file); a `UserError` naming
    `lock` when its structure is not DVC's."""

    def wrong(what: str) -> UserError:
        return UserError(f"{lock}: not a DVC lock file ({what}); {_RESTORE}.")

    record = LockRecord()
    if data is None:
        return record
    if not isinstance(data, Mapping):
        raise wrong(f"its top level is a {type(data).__name__}, not a mapping")
    stages = data.get("stages") or {}
    if not isinstance(stages, Mapping):
        raise wrong("`stages` is not a mapping of stage names")
    for stage, entry in stages.items():
        if not isinstance(entry, Mapping):
            raise wrong(f"stage {stage} is not a mapping")
        recorded = entry.get("params") or {}
        if isinstance(recorded, Mapping):
            record.params[str(stage)] = [
                k
                for values in recorded.values()
                if isinstance(values, Mapping)
                for k in flat_keys(values)
            ]
        stage_outs = entry.get("outs") or []
        if not isinstance(stage_outs, list):
            raise wrong(f"the outs of stage {stage} are not a list")
        for out in stage_outs:
            if not isinstance(out, Mapping) or "path" not in out:
                raise wrong(f"an output of stage {stage} has no path")
            if "md5" in out:
                record.outs.append((str(stage), str(out["path"]).rstrip("/"), str(out["md5"])))
    return record


class DvcCache:
    """DVC's own view of the project at `root`: its local cache (wherever `dvc cache dir`
    put it), the `.dir` manifests in it, whether a remote is set, and a directory output's
    hash as DVC computes it. Outside a DVC project there is no cache and no remote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._manifests: dict[str, dict[str, str] | None] = {}
        self._dir_md5: dict[str, str | None] = {}
        self._repo_state: tuple[Any, bool] | None = None  # (local cache, a remote is set)

    def _repo(self) -> tuple[Any, bool] | None:
        """DVC's local cache and whether a remote is configured (None: no DVC project)."""
        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        if self._repo_state is None:
            try:
                with Repo(str(self.root)) as repo:
                    remotes = repo.config.get("remote") or {}
                    self._repo_state = (repo.cache.local, bool(remotes))
            except DvcException:
                return None
        return self._repo_state

    def has_remote(self) -> bool:
        """Whether the project configures a DVC remote (to fetch manifests from)."""
        state = self._repo()
        return state is not None and state[1]

    def manifest(self, md5: str) -> dict[str, str] | None:
        """relpath -> md5 of a directory output, from its `.dir` manifest in the DVC cache."""
        if md5 not in self._manifests:
            state = self._repo()
            try:
                if state is None:
                    raise OSError("no DVC cache")
                entries = json.loads(Path(state[0].oid_to_path(md5)).read_text())
                self._manifests[md5] = {str(e["relpath"]): str(e["md5"]) for e in entries}
            except (OSError, ValueError, KeyError, TypeError):
                self._manifests[md5] = None
        return self._manifests[md5]

    def dir_md5(self, out: str) -> str | None:
        """The `.dir` hash DVC computes for directory output `out` as it is on disk (what
        `dvc status` compares with dvc.lock); None when it cannot be computed."""
        if out not in self._dir_md5:
            from dvc.fs import LocalFileSystem
            from dvc_data.hashfile.build import build

            state = self._repo()
            path = self.root / out
            try:
                if state is None or not path.is_dir():
                    raise OSError(f"{path}: not a directory of a DVC project")
                _, _, obj = build(state[0], str(path), LocalFileSystem(), "md5", dry_run=True)
                self._dir_md5[out] = str(obj.hash_info.value)
            except Exception:  # an unreadable tree: reported as differing
                self._dir_md5[out] = None
        return self._dir_md5[out]


class DvcLock:
    """The outputs dvc.lock records, checked file by file (each file once); what it cannot
    check file by file (no dvc.lock, directory outputs without a manifest) goes to `general`."""

    def __init__(self, root: Path, general: list[Problem]) -> None:
        self.root = root
        self.general = general
        record = read_lock(root, general)
        self.params = record.params  # stage -> the params it depends on
        self._outs = record.outs
        self.cache = DvcCache(root)
        self._checked: dict[str, str | None] = {}
        self._unmanifested: dict[str, str] = {}  # output -> stage, differing, no manifest
        self._unmanifested_problem: Problem | None = None

    def check(self, link: Link, rel: str) -> str | None:
        """Compare a file's md5 with dvc.lock; return the stage whose output holds it.

        Each file is checked once; its problems go to the first link that reads it."""
        if rel not in self._checked:
            stage, found = self.findings(rel)
            self._checked[rel] = stage
            add_problems(link, "dvc", found)
        return self._checked[rel]

    def findings(self, rel: str) -> tuple[str | None, list[str]]:
        """The stage whose output holds `rel` (None: none) and where the file disagrees with
        what dvc.lock records for it."""
        if not self._outs:
            return None, []
        for stage, out, md5 in self._outs:
            if rel != out and not rel.startswith(out + "/"):
                continue
            if not md5.endswith(".dir"):
                return stage, _file_problems(self.root, rel, out, stage, md5)
            manifest = self.cache.manifest(md5)
            if manifest is not None:
                recorded = manifest.get(rel[len(out) + 1 :])
                return stage, _file_problems(self.root, rel, out, stage, recorded)
            if self.cache.dir_md5(out) != md5:
                self._no_manifest(out, stage)
            return stage, []  # the same tree: every file of it agrees with dvc.lock
        return None, [f"{rel} is not an output of any stage in dvc.lock"]

    def _no_manifest(self, out: str, stage: str) -> None:
        """A directory output that differs from dvc.lock and has no manifest in the cache
        to say which file: named once, in one problem for all such outputs."""
        self._unmanifested[out] = stage
        fetch = (
            "`dvc fetch` gets the manifests from the remote, then the audit names each file"
            if self.cache.has_remote()
            else "no DVC remote is configured to fetch the manifests from, which name each "
            "file: `dvc status` lists what changed, `dvc repro -f -s STAGE` recomputes it"
        )
        listed = ", ".join(f"{o} (stage {s})" for o, s in sorted(self._unmanifested.items()))
        message = (
            f"{len(self._unmanifested)} directory output(s) differ from what dvc.lock records, "
            f"and the DVC cache has no manifest of them (e.g. after `dvc gc`): {listed}; {fetch}"
        )
        if self._unmanifested_problem is None:
            self._unmanifested_problem = Problem("dvc.lock", "dvc", message)
            self.general.append(self._unmanifested_problem)
        else:
            self._unmanifested_problem.message = message


def _file_problems(root: Path, rel: str, out: str, stage: str, recorded: str | None) -> list[str]:
    """File `rel` of output `out` of `stage` against the md5 dvc.lock records for it."""
    path = root / rel
    if recorded is None:
        return [f"{rel} is not among the files dvc.lock records for stage {stage}"]
    if not path.is_file():
        return [f"{rel} is missing (dvc.lock records md5 {recorded})"]
    actual = md5_file(path)
    if actual == recorded:
        return []
    return [
        f"{rel} has md5 {actual}, dvc.lock (stage {stage}) records {recorded}: "
        "the file changed after the stage ran; `dvc checkout --force "
        f"{out}` restores the recorded version (discarding the change), "
        f"`dvc repro -f -s {stage}` recomputes it"
    ]
