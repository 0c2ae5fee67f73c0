"""Stage `visualise`: mask images, pixel maps and the paper's figures as PNGs."""

from _bootstrap import ROOT

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.visualise(params, ROOT)


stage_main(run)
