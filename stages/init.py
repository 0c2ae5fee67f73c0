"""Stage `init`: draw θ0 once per trial and the all-ones mask m_0."""

import _bootstrap  # noqa: F401

from lottery import study
from lottery.cli import stage_main

stage_main(study.init)
