"""What the audit records: a link of a chain, a problem, and what a mask's place implies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field


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
    machine: str | None = None  # the machine kind its run trained on (`machine.trained_on`)


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


def add_problem(link: Link, check: str, message: str) -> None:
    """Record a disagreement on `link` (`check`: file | lineage | dvc | mlflow)."""
    # `dvc checkout <file>` refuses to replace a modified file: the fix needs --force.
    message = re.sub(r"`dvc checkout (?!--force)", "`dvc checkout --force ", message)
    link.problems.append(Problem(link.path, check, message))


def add_problems(link: Link, check: str, messages: Iterable[str]) -> None:
    """Record each of `messages` (a check's findings) on `link`, as `add_problem` does."""
    for message in messages:
        add_problem(link, check, message)
