"""What a run records about where it came from: the params in MLflow's flat form
(`flatten`) and MLflow's standard context tags (`context_tags`); the commit checked out is
`lottery.core.io.git_revision`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lottery.tracking.store import MAX_PARAM_LEN


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
