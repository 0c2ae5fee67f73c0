"""The layout module: every name it builds parses back, and nothing else parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lottery.core import paths


def test_round_names_round_trip() -> None:
    assert paths.round_name(0) == "r00"
    assert paths.round_name(15) == "r15"
    for rnd in (0, 1, 9, 10, 99, 100):
        assert paths.parse_round(paths.round_name(rnd)) == rnd
    for bad in ("r1", "01", "rr01", "r01x", "t0", ""):
        with pytest.raises(ValueError, match="not a round name"):
            paths.parse_round(bad)


def test_run_keys_do_not_read_as_rounds() -> None:
    assert paths.run_key(0) == "t0"
    assert paths.run_key(0, 1) == "t0-rep1"
    for trial, repeat in ((0, None), (3, None), (0, 0), (1, 2), (12, 10)):
        assert paths.parse_run_key(paths.run_key(trial, repeat)) == (trial, repeat)
    for bad in ("t0r1", "r01", "t", "t0-rep", "0"):
        with pytest.raises(ValueError, match="not a run key"):
            paths.parse_run_key(bad)


def test_mask_paths_parse_to_their_place() -> None:
    place = paths.parse_mask_path
    assert place(paths.initial_mask_path(1).as_posix()) == paths.MaskPlace("ticket", None, 1)
    assert place(paths.next_mask_path("r02", 0).as_posix()) == paths.MaskPlace("ticket", 2, 0)
    reinit = paths.control_mask_path("reinit", "r03", paths.run_key(1, 2)).as_posix()
    assert reinit == "artifacts/reinit/r03/t1-rep2/mask.npz"
    assert place(reinit) == paths.MaskPlace("reinit", 3, 1, 2)
    random = paths.control_mask_path("random", "r01", paths.run_key(0)).as_posix()
    assert place(random) == paths.MaskPlace("random", 1, 0)
    for other in (
        "artifacts/ticket/r01/t0/trained.npz",
        "artifacts/init/t0/theta0.npz",
        "artifacts/ticket/r01/t0-rep1/next_mask.npz",  # tickets have no repeats
        "artifacts/reinit/r1/t0-rep0/mask.npz",
        "elsewhere/mask.npz",
    ):
        assert place(other) is None, other


def test_round_mask_path_is_m0_then_the_previous_rounds_pruned_mask() -> None:
    assert paths.round_mask_path(0, 1) == paths.initial_mask_path(1)
    assert paths.round_mask_path(3, 1) == paths.next_mask_path("r02", 1)


def test_mask_figure_names_parse_back() -> None:
    mask, pixel = paths.mask_figure_names(7)
    assert (mask, pixel) == ("masks/r07_fc1_mask", "masks/r07_pixel_map")
    assert paths.parse_mask_figure(mask) == (7, "fc1_mask")
    assert paths.parse_mask_figure(pixel) == (7, "pixel_map")
    assert paths.parse_mask_figure("accuracy_vs_remaining") is None


def test_a_layout_hangs_every_path_off_its_root(tmp_path: Path) -> None:
    lay = paths.Layout(tmp_path)
    built = {
        lay.theta0_path(1): paths.theta0_path(1),
        lay.round_mask_path(2, 0): paths.round_mask_path(2, 0),
        lay.control_mask_path("reinit", "r01", paths.run_key(0, 1)): paths.control_mask_path(
            "reinit", "r01", paths.run_key(0, 1)
        ),
        lay.metrics_path("random", "r03"): paths.metrics_path("random", "r03"),
        lay.report_path(): paths.report_path(),
        lay.dataset_dir("mnist"): Path("data/mnist"),
    }
    for path, rel in built.items():
        assert path == tmp_path / rel and not rel.is_absolute()
        assert lay.relative(path) == rel.as_posix()
    # What a relative path names does not depend on the working directory: the root does.
    assert paths.parse_mask_path(lay.relative(lay.next_mask_path("r01", 1))) == paths.MaskPlace(
        "ticket", 1, 1
    )
