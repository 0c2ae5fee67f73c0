"""Stage `visualise`: mask images, pixel maps and the paper's figures as PNGs."""

from _bootstrap import ROOT

from lottery.core.params import Params
from lottery.study.entry import stage_main


def run(params: Params) -> None:
    from lottery.study.visualise import visualise

    visualise(params, ROOT)


stage_main(run)
