"""Stages `dense`, `ticket@rNN`, `reinit@rNN`, `random@rNN`: train one round's networks.

Usage: python stages/train.py {ticket,reinit,random} rNN, only for the stages dvc.yaml
has (generated from params.yaml); anything else is refused with one line.
"""

import sys

from _bootstrap import ROOT

from lottery.core.errors import UserError, fail
from lottery.core.params import Params
from lottery.core.paths import parse_round, round_name
from lottery.study.entry import stage_main

USAGE = (
    "usage: python stages/train.py {ticket,reinit,random} rNN, e.g. `ticket r01`: the "
    "stages dvc.yaml runs (`dvc repro` runs them for you)"
)


def check_stage(params: Params, condition: str, name: str) -> None:
    """Refuse a (condition, round) that dvc.yaml, generated from these params, lacks."""
    p = params.pipeline
    rounds = params.study.rounds
    if condition == "ticket":
        if name == round_name(0) or name in p.rounds:
            return
        raise UserError(
            f"no stage ticket@{name}: this study has study.rounds = {rounds}, so its ticket "
            f"stages are {round_name(0)} to {round_name(rounds)}. For more rounds run "
            f"`lottery rounds {parse_round(name)}`, then `dvc repro`."
        )
    entries = p.reinit_rounds if condition == "reinit" else p.random_rounds
    if not getattr(params.controls, condition):
        raise UserError(
            f"no stage {condition}@{name}: the {condition} control is off "
            f"(controls.{condition}: false). Set it to true in params.yaml, run "
            "`lottery rounds`, then `dvc repro`."
        )
    if name not in entries:
        listed = ", ".join(entries) or "none"
        first = " (controls start at round 1; round 0 is the dense network)"
        first = first if name == round_name(0) else ""
        raise UserError(
            f"no stage {condition}@{name}{first}: the {condition} stages are {listed} "
            f"(study.rounds = {rounds}, controls.rounds = {params.controls.rounds})."
        )


def is_round(name: str) -> bool:
    try:
        parse_round(name)
    except ValueError:
        return False
    return True


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("ticket", "reinit", "random") or not is_round(argv[1]):
        fail(USAGE)
    condition, name = argv

    def train(params: Params) -> None:
        check_stage(params, condition, name)
        from lottery.study.train import train_stage

        train_stage(params, condition, name, ROOT)

    stage_main(train)


main(sys.argv[1:])
