"""The study check: the files of a chain were made with the params at hand.

- Params: a mask whose lineage records another `study_hash` than params.yaml's is
  checked key by key: each param its stage depends on (the keys dvc.lock records for
  it), as the MLflow run that made the mask logged it, against params.yaml. A study whose
  rounds grew differs only in keys no finished stage depends on, and passes; files copied
  from a study of another learning rate (then `dvc commit -f`) do not.
- Pruning point: a ticket's pruned mask m_{k+1} records the weights it was cut from,
  `pruned_from: {"point", "iteration"}`. The point is params.yaml's `prune.point`; the
  iteration is `train.iterations` (horizon) or the producing run's early-stop iteration
  in metrics/ticket/rNN.json (early_stop); the run's tags `lottery.pruned_from_point` and
  `lottery.pruned_from_iteration` say the same.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lottery.audit.links import Expected, Link, add_problem
from lottery.audit.places import prunes
from lottery.core import paths
from lottery.core.conditions import TICKET
from lottery.core.lineage import tag
from lottery.core.params import Params


def flat_params(params: Params) -> dict[str, str]:
    """params.yaml as the MLflow params a run logs (`train.learning_rate` -> "0.0012")."""
    from lottery.tracking.context import flatten

    return flatten(params.as_dict())


def _value(text: str) -> Any:
    """A logged param's value (numbers and lists compared as values, not spellings)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return list(value) if isinstance(value, tuple) else value


def same_value(a: str, b: str) -> bool:
    return a == b or _value(a) == _value(b)


def check_params(
    link: Link,
    lineage: Mapping[str, Any],
    run: Any,
    keys: Sequence[str] | None,
    params: Params,
    current: Mapping[str, str],
) -> None:
    """The params the run that made `link` logged, for each key its stage depends on
    (`keys`, from dvc.lock), against params.yaml (`current`, flattened)."""
    recorded_hash = lineage.get("study_hash")
    if recorded_hash is None or recorded_hash == params.study_hash():
        return  # the params at hand made it
    if run is None or not keys:
        return  # nothing to compare with (the missing run or dvc.lock is a problem itself)
    logged = run.data.params
    differ = [
        f"{k} {logged[k]} (params.yaml: {current[k]})"
        for k in keys
        if k in logged and k in current and not same_value(logged[k], current[k])
    ]
    if differ:
        add_problem(
            link,
            "params",
            f"made with other params than params.yaml: MLflow run {run.info.run_id} of stage "
            f"{link.stage} logged {'; '.join(differ)}: its files come from another study "
            "(or params.yaml changed after `dvc commit`); `dvc repro -f -s "
            f"{link.stage}` recomputes them with these params",
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def early_stop_iteration(root: Path, run_round: int, trial: int) -> int | str:
    """The early-stop iteration of ticket round `run_round`'s run of `trial`, from the
    stage's metrics file; a string saying why not when it cannot be read."""
    rel = paths.metrics_path(TICKET.directory, paths.round_name(run_round)).as_posix()
    key = paths.run_key(trial)
    try:
        data = json.loads((root / rel).read_text())
        value = _int(data["runs"][key]["early_stop_iteration"])
    except (OSError, ValueError) as exc:
        return f"{rel} cannot be read ({exc})"
    except (KeyError, TypeError):
        return f"{rel} has no runs.{key}.early_stop_iteration"
    return value if value is not None else f"{rel}: runs.{key}.early_stop_iteration is no integer"


def check_pruned_from(
    link: Link,
    lineage: Mapping[str, Any],
    exp: Expected | None,
    run: Any,
    params: Params,
    root: Path,
    side: str,
) -> None:
    """The weights a ticket's pruned mask was cut from, against params.yaml, the stage's
    metrics and the MLflow run (only ticket masks of round >= 1: the next masks)."""
    if exp is None or not prunes(exp.condition) or exp.run_round is None:
        return
    point = getattr(params.prune, "point", None)
    if point is None:
        return  # params of before the pruning point existed
    redo = f"`dvc repro -f -s {link.stage}` recomputes it"
    pruned = lineage.get("pruned_from")
    if pruned is None:
        add_problem(
            link,
            "lineage",
            f"{side} records no pruned_from (the weights it was cut from): made before the "
            "pruning point was recorded; rerun with `dvc repro -f`",
        )
        return
    got_point = pruned.get("point") if isinstance(pruned, Mapping) else None
    got_iteration = _int(pruned.get("iteration")) if isinstance(pruned, Mapping) else None
    if got_point not in ("horizon", "early_stop") or got_iteration is None:
        add_problem(
            link,
            "lineage",
            f"{side} records pruned_from {pruned!r}, not {{point: horizon | early_stop, "
            f"iteration: N}}; {redo}",
        )
        return
    _check_point(link, exp.run_round, point, got_point, got_iteration, params, root, side)
    if run is None:
        return
    tags = run.data.tags
    for name, value in (("pruned_from_point", got_point), ("pruned_from_iteration", got_iteration)):
        if tags.get(tag(name)) != str(value):
            add_problem(
                link,
                "mlflow",
                f"MLflow run {run.info.run_id} has tag {tag(name)}={tags.get(tag(name))!r}, "
                f"its lineage {side} says {str(value)!r}",
            )


def _check_point(
    link: Link,
    run_round: int,
    point: str,
    got_point: str,
    got_iteration: int,
    params: Params,
    root: Path,
    side: str,
) -> None:
    """The recorded pruning point and iteration against params.yaml and the metrics."""
    redo = f"`dvc repro -f -s {link.stage}` recomputes it"
    if got_point != point:
        add_problem(
            link,
            "lineage",
            f"{side} records pruned_from point {got_point!r}, params.yaml has prune.point "
            f"{point!r}: the mask was cut from other weights than the params ask for; {redo}",
        )
    elif point == "horizon" and got_iteration != params.train.iterations:
        add_problem(
            link,
            "lineage",
            f"{side} records pruning at iteration {got_iteration} (horizon), but "
            f"train.iterations is {params.train.iterations}; {redo}",
        )
    elif point == "early_stop" and link.trial is not None:
        want = early_stop_iteration(root, run_round, link.trial)
        if isinstance(want, str):
            add_problem(link, "lineage", f"cannot check {side}'s pruned_from: {want}")
        elif got_iteration != want:
            rel = paths.metrics_path(TICKET.directory, paths.round_name(run_round)).as_posix()
            add_problem(
                link,
                "lineage",
                f"{side} records pruning at iteration {got_iteration} (early_stop), but "
                f"{rel} records early-stop iteration {want} for {paths.run_key(link.trial)}; "
                f"{redo}",
            )
