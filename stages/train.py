"""Stages `dense`, `ticket@rNN`, `reinit@rNN`, `random@rNN`: train one round's networks.

Usage: python stages/train.py {ticket,reinit,random} rNN
"""

import sys

import _bootstrap  # noqa: F401

from lottery import study
from lottery.cli import fail, stage_main

if len(sys.argv) != 3 or sys.argv[1] not in ("ticket", "reinit", "random"):
    fail("usage: python stages/train.py {ticket,reinit,random} rNN")
condition, name = sys.argv[1], sys.argv[2]
stage_main(lambda params: study.train_stage(params, condition, name))
