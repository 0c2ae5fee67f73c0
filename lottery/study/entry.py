"""The stage scripts' entry point: validated params in, one line out on every kind of failure.

It lives in the study package, not in `lottery.cli`, so that a stage's import closure (its
code deps in dvc.yaml) holds no `lottery` subcommand.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lottery.core.errors import guarded, raise_terminated
from lottery.core.params import Params, load_params
from lottery.core.rounds import check_dvc_yaml


def stage_main(fn: Callable[[Params], Any], params_file: str = "params.yaml") -> None:
    """Run one stage: validated params in, one line out on every kind of failure.

    Returns normally when the stage succeeds; exits 2 on invalid input (params, or round
    lists in dvc.yaml that do not follow from them), 130 on Ctrl-C and 143 on SIGTERM (the
    stage's MLflow runs marked FAILED with the reason)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_terminated)

    def body() -> None:
        params = load_params(params_file)
        dvc_yaml = Path(params_file).parent / "dvc.yaml"
        if dvc_yaml.is_file():
            c = params.controls
            what = (
                f"params.yaml's study.rounds = {params.study.rounds}, controls.reinit = "
                f"{c.reinit}, controls.random = {c.random}, controls.rounds = {c.rounds}"
            )
            check_dvc_yaml(dvc_yaml, params.pipeline_dict(), what)
        fn(params)

    guarded(body, "the stage")
