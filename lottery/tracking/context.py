"""What a run records about where it came from: the params in MLflow's flat form
(`flatten`), the commit checked out (`git_revision`) and MLflow's standard context tags
(`context_tags`)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lottery.core.io import project_root
from lottery.tracking.store import MAX_PARAM_LEN


def git_revision(root: Path | None = None) -> str:
    """The commit checked out, with `-dirty` when tracked files differ from it."""
    cwd = root or project_root()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow params: `train.iterations` -> "5000"."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:MAX_PARAM_LEN]
    return out


def context_tags() -> dict[str, str]:
    """MLflow's standard context tags (mlflow.user, mlflow.source.name/type, and
    mlflow.source.git.commit inside a git checkout), as `mlflow.start_run` sets them."""
    from mlflow.tracking.context.registry import resolve_tags

    return {k: str(v) for k, v in resolve_tags().items()}
