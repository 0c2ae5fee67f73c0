"""Stage `init`: draw θ0 once per trial and the all-ones mask m_0."""

import _bootstrap  # noqa: F401

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.init(params)


stage_main(run)
