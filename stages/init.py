"""Stage `init`: draw θ0 once per trial and the all-ones mask m_0."""

from _bootstrap import ROOT

from lottery.core.params import Params
from lottery.study.entry import stage_main


def run(params: Params) -> None:
    from lottery.study.prepare import init

    init(params, ROOT)


stage_main(run)
