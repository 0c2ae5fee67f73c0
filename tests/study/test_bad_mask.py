"""A bad input mask stops the train stage: `python stages/train.py ticket r02` with a
replaced m_2 exits 2 with one `error:` line, trains and records nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.conftest import copy_study, run
from tests.helpers import all_runs, bad_mask_arrays, local_store, mlflow_client


def test_train_stage_refuses_a_bad_mask(tiny_study: Path, tmp_path: Path) -> None:
    """A replaced m_2 (round r02's input mask) stops `python stages/train.py ticket r02`."""
    project = copy_study(tiny_study, tmp_path / "study")
    target = project / "artifacts" / "ticket" / "r01" / "t1" / "next_mask.npz"
    metrics = project / "metrics" / "ticket" / "r02.json"
    before = metrics.read_bytes()
    runs_before = len(all_runs(mlflow_client(local_store(project))))
    for case, expected in [
        ("pickled", "holds pickled Python objects; refused"),
        ("other_arch", "unknown layers ['conv1', 'conv2']"),
    ]:
        target.unlink()  # the file may be a link into the DVC cache: never write through it
        np.savez(target, **bad_mask_arrays(case))  # type: ignore[arg-type]
        proc = run(
            project, sys.executable, "stages/train.py", "ticket", "r02", check=False, timeout=600
        )
        assert proc.returncode == 2, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: artifacts/ticket/r01/t1/next_mask.npz"), proc.stderr
        assert expected in last and "Traceback" not in proc.stderr, proc.stderr
    assert metrics.read_bytes() == before  # nothing written, nothing trained
    assert len(all_runs(mlflow_client(local_store(project)))) == runs_before
    assert "ticket@r02" in run(project, "dvc", "status").stdout  # DVC sees the changed input
