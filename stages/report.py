"""Stage `report`: the Markdown report, the summary table and the DVC plots tables."""

import _bootstrap  # noqa: F401

from lottery import study
from lottery.cli import stage_main

stage_main(study.report)
