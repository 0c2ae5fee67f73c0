"""`lottery.analysis.frames`, the one reader of a study's metrics and curves files: the
stages' files in their order or every file, old settings read from params.yaml as DVC reads
it, curves as written and as frames; and the stage list the figures and report read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lottery.analysis import frames, legacy
from lottery.core import io, paths
from lottery.core.params import load_params
from lottery.study.visualise import stages

TEN_K = Path(__file__).resolve().parents[2] / "reports" / "results" / "lenet-5trials-10k"


def test_the_stages_of_a_real_study_are_its_metrics_files_in_pipeline_order(
    tiny_study: Path,
) -> None:
    params = load_params(tiny_study / "params.yaml")
    named = stages(params)
    on_disk = {(p.parent.name, p.stem) for p in frames.metrics_files(tiny_study)}
    assert set(named) == on_disk and len(named) == len(on_disk)
    assert named[0] == ("ticket", "r00")
    metrics = frames.load_metrics(tiny_study, named)
    assert [(m["condition"], paths.round_name(m["round"])) for m in metrics] == named
    # Every file, by default, in path order: the same files, normalised the same way.
    everything = frames.load_metrics(tiny_study)
    key = lambda m: (m["condition"], m["round"])  # noqa: E731
    assert sorted(everything, key=key) == sorted(metrics, key=key)


def test_load_curves_of_the_stages_is_each_stages_curves_frame(tiny_study: Path) -> None:
    named = stages(load_params(tiny_study / "params.yaml"))
    frame = frames.load_curves(tiny_study, named)
    expected = pd.concat(
        [
            frames.curves_frame(
                io.read_json(tiny_study / paths.curves_path(*s)),
                io.read_json(tiny_study / paths.metrics_path(*s)),
            )
            for s in named
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(frame, expected)
    raw = frames.read_curves(tiny_study, frames.load_metrics(tiny_study, named))
    assert sorted(raw) == ["random", "reinit", "ticket"] and sorted(raw["ticket"]) == [0, 1, 2]
    assert raw["reinit"][1] == io.read_json(tiny_study / paths.curves_path("reinit", "r01"))


def test_a_stage_without_its_metrics_file_is_an_error() -> None:
    with pytest.raises(FileNotFoundError, match=r"ticket/r99\.json"):
        frames.load_metrics(TEN_K, [("ticket", "r00"), ("ticket", "r99")])
    # Without a curves file (a kept result keeps only its metrics) a stage has no curves.
    assert frames.read_curves(TEN_K, frames.load_metrics(TEN_K, [("ticket", "r03")])) == {}
    assert frames.load_curves(TEN_K, [("ticket", "r03")]).empty


def test_old_settings_are_read_from_params_yaml_as_dvc_reads_it(tmp_path: Path) -> None:
    """`1e3` is a number in YAML 1.2 (DVC's reading); YAML 1.1 makes it a string that
    `int()` refuses."""
    (tmp_path / "params.yaml").write_text("train:\n  iterations: 1e3\n  eval_every: 1e2\n")
    assert legacy.training_settings(tmp_path / "params.yaml") == {
        "eval_every": 100,
        "iterations": 1000,
        "patience": 0,
    }
    old = json.loads((TEN_K / paths.metrics_path("ticket", "r02")).read_text())
    assert "eval_every" not in old and "iterations" not in old  # an old file: settings needed
    io.write_json(tmp_path / paths.metrics_path("ticket", "r02"), old)
    (m,) = frames.load_metrics(tmp_path)
    assert (m["eval_every"], m["iterations"], m["patience"]) == (100, 1000, 0)
    assert all(r["stop_iteration"] == 1000 for r in m["runs"].values())


def test_old_curves_test_on_the_validation_grid() -> None:
    assert legacy.tested_iterations({"iteration": [10, 20], "test_iteration": [20]}) == [20]
    assert legacy.tested_iterations({"iteration": [10, 20]}) == [10, 20]
