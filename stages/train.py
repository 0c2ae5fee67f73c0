"""Stages `dense`, `ticket@rNN`, `reinit@rNN`, `random@rNN`: train one round's networks.

Usage: python stages/train.py {ticket,reinit,random} rNN (only the stages dvc.yaml has)
"""

import sys

import _bootstrap  # noqa: F401

from lottery.cli import train_main

train_main(sys.argv[1:])
