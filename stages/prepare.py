"""Stage `prepare`: verify the committed MNIST files and write the train/val/test split."""

import _bootstrap  # noqa: F401

from lottery import study
from lottery.cli import stage_main

stage_main(study.prepare)
