"""Stage `init`: draw θ0 once per trial and the all-ones mask m_0."""

from _bootstrap import ROOT

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.init(params, ROOT)


stage_main(run)
