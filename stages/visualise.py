"""Stage `visualise`: mask images, pixel maps and the paper's figures as PNGs."""

import _bootstrap  # noqa: F401

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.visualise(params)


stage_main(run)
