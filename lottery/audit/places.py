"""Where a mask lies in the artifacts tree says what it is: the masks of a study
(`study_masks`), and what a mask's place implies its lineage records (`expected_for`)."""

from __future__ import annotations

from pathlib import Path

from lottery.audit.links import Expected
from lottery.core import paths
from lottery.core.conditions import RANDOM, REGISTRY, REINIT, TICKET
from lottery.core.params import Params


def prunes(condition: str | None) -> bool:
    """Whether `condition`'s runs prune: its masks after m_0 are cut from its trained
    weights (the ticket, which feeds the next round); a control's mask is the one it trained."""
    return condition in REGISTRY and REGISTRY[condition].feeds_next_round


def expected_for(rel: str) -> Expected | None:
    """Where the file lies tells its round, trial, condition, stage and parent."""
    place = paths.parse_mask_path(rel)
    if place is None:
        return None
    t, rnd = place.trial, place.stage_round
    if rnd is None:
        return Expected(0, t, TICKET.name, "init", None)
    name = paths.round_name(rnd)
    parent = paths.round_mask_path(rnd, t).as_posix()
    if prunes(place.condition):
        start = paths.theta0_path(t) if rnd == 0 else paths.rewind_path(t)
        stage = "dense" if rnd == 0 else f"{place.condition}@{name}"
        return Expected(
            rnd + 1, t, place.condition, stage, parent, start=start.as_posix(), run_round=rnd
        )
    cond = place.condition
    if cond == REINIT.name:  # its own fresh init; a random-prune control starts from θ_j
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
                paths.control_mask_path(REINIT.name, name, paths.run_key(t, r)).as_posix()
                for r in range(params.controls.reinit_repeats)
            ]
    for name in params.pipeline.random_rounds:
        out += [
            paths.control_mask_path(RANDOM.name, name, paths.run_key(t)).as_posix() for t in trials
        ]
    return out


def label(exp: Expected | None, rel: str) -> str:
    """How the audit names the mask at `rel` (m_k, reinit m_k repeat r, ...)."""
    if exp is None:
        return Path(rel).name
    if prunes(exp.condition):
        return f"m_{exp.round}"
    rep = f" repeat {exp.repeat}" if exp.repeat is not None else ""
    return f"{exp.condition} m_{exp.round}{rep}"
