"""Stage `prepare`: verify the chosen dataset's files and write the train/val/test split."""

from _bootstrap import ROOT

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.prepare(params, ROOT)


stage_main(run)
