"""The DVC check: a file's md5 against what dvc.lock records for the output holding it.

A directory output's per-file md5s come from its `.dir` manifest, found in DVC's cache
through DVC itself (so a cache moved with `dvc cache dir` is found too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lottery.audit_links import Link, Problem, add_problem
from lottery.params import read_yaml


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)  # DVC's content hash, not a security measure
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DvcLock:
    """The outputs dvc.lock records, checked file by file (each file once)."""

    def __init__(self, root: Path, general: list[Problem]) -> None:
        self.root = root
        self.general = general
        self._outs = self._read_lock()
        self._manifests: dict[str, dict[str, str] | None] = {}
        self._checked: dict[str, str | None] = {}
        self._cache: Any = None

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

    def _manifest_path(self, md5: str) -> Path | None:
        """Where DVC's cache keeps the object `md5` (None when this is no DVC project)."""
        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        if self._cache is None:
            try:
                with Repo(str(self.root)) as repo:
                    self._cache = repo.cache.local
            except DvcException:
                return None
        return Path(self._cache.oid_to_path(md5))

    def _manifest(self, md5: str) -> dict[str, str] | None:
        """relpath -> md5 of a directory output, from its `.dir` manifest in the DVC cache."""
        if md5 not in self._manifests:
            f = self._manifest_path(md5)
            try:
                if f is None:
                    raise OSError("no DVC cache")
                entries = json.loads(f.read_text())
                self._manifests[md5] = {str(e["relpath"]): str(e["md5"]) for e in entries}
            except (OSError, ValueError, KeyError, TypeError):
                self._manifests[md5] = None
        return self._manifests[md5]

    def check(self, link: Link, rel: str) -> str | None:
        """Compare a file's md5 with dvc.lock; return the stage whose output holds it.

        Each file is checked once; its problems go to the first link that reads it."""
        if rel not in self._checked:
            self._checked[rel] = self._check(link, rel)
        return self._checked[rel]

    def _check(self, link: Link, rel: str) -> str | None:
        if not self._outs:
            return None
        for stage, out, md5 in self._outs:
            if rel != out and not rel.startswith(out + "/"):
                continue
            if md5.endswith(".dir"):
                manifest = self._manifest(md5)
                if manifest is None:
                    add_problem(
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
                add_problem(
                    link, "dvc", f"{rel} is not among the files dvc.lock records for stage {stage}"
                )
            elif not path.is_file():
                add_problem(link, "dvc", f"{rel} is missing (dvc.lock records md5 {recorded})")
            else:
                actual = md5_file(path)
                if actual != recorded:
                    add_problem(
                        link,
                        "dvc",
                        f"{rel} has md5 {actual}, dvc.lock (stage {stage}) records {recorded}: "
                        "the file changed after the stage ran; `dvc checkout --force "
                        f"{out}` restores the recorded version (discarding the change), "
                        f"`dvc repro -f -s {stage}` recomputes it",
                    )
            return stage
        add_problem(link, "dvc", f"{rel} is not an output of any stage in dvc.lock")
        return None
