"""Stage `report`: the Markdown report, the summary table and the DVC plots tables."""

from _bootstrap import ROOT

from lottery.core.params import Params
from lottery.study.entry import stage_main


def run(params: Params) -> None:
    from lottery.study.report import report

    report(params, ROOT)


stage_main(run)
