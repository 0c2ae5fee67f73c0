"""Stage `visualise`: mask images, pixel maps and the paper's figures as PNGs."""

import _bootstrap  # noqa: F401

from lottery import study
from lottery.cli import stage_main

stage_main(study.visualise)
