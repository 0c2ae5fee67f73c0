"""Stage `report`: the Markdown report, the summary table and the DVC plots tables."""

from _bootstrap import ROOT

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.report(params, ROOT)


stage_main(run)
