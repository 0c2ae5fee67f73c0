"""Stage `report`: the Markdown report, the summary table and the DVC plots tables."""

import _bootstrap  # noqa: F401

from lottery.errors import stage_main
from lottery.params import Params


def run(params: Params) -> None:
    from lottery import study

    study.report(params)


stage_main(run)
