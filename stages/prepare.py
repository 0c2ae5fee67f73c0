"""Stage `prepare`: verify the chosen dataset's files and write the train/val/test split."""

from _bootstrap import ROOT

from lottery.core.params import Params
from lottery.study.entry import stage_main


def run(params: Params) -> None:
    from lottery.study.prepare import prepare

    prepare(params, ROOT)


stage_main(run)
