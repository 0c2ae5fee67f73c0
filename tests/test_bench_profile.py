"""The paper estimate's stopping profile: a committed study of the preset's protocol gives
the measured stop of every network at every round; other protocols fall back on the
patience evidence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from lottery.analysis.patience import CURVES_FILE
from lottery.bench import main as bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports" / "results"
#: The protocol the committed 50,000-iteration studies ran (before `prune.point` and
#: `train.adam_epsilon`: pruned where patience stopped); today's paper preset is another.
PAPER = ROOT / "reports" / "results" / "lenet-5trials-50k" / "params.yaml"
TODAY = ROOT / "presets" / "paper.yaml"


def write_preset(tmp_path: Path, change: Mapping[str, Mapping[str, object]]) -> Path:
    raw = yaml.safe_load(PAPER.read_text())
    for section, values in change.items():
        raw.setdefault(section, {}).update(values)
    out = tmp_path / "preset.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def test_the_committed_paper_scale_study_gives_every_rounds_stops() -> None:
    source, fractions = bench.result_fractions(RESULTS, PAPER)
    assert source == str(RESULTS / "lenet-5trials-50k")
    assert set(fractions) == {"ticket", "reinit", "random"}
    assert sorted(fractions["ticket"]) == list(range(16))
    assert sorted(fractions["reinit"]) == sorted(fractions["random"]) == list(range(1, 16))
    # read independently: round 15's random-prune runs, in the metrics file's order
    m = json.loads((RESULTS / "lenet-5trials-50k/metrics/random/r15.json").read_text())
    stops = [r["stop_iteration"] / 50_000 for r in m["runs"].values()]
    assert fractions["random"][15] == stops and len(stops) == 5
    patience = yaml.safe_load(PAPER.read_text())["train"]["patience"]
    for rounds in fractions.values():
        for runs in rounds.values():
            assert all(patience / 50_000 <= f <= 1.0 for f in runs)


def test_todays_paper_preset_is_not_the_protocol_of_the_committed_studies() -> None:
    """The committed 50k studies pruned where patience stopped: their stops do not price
    the paper preset, which prunes at the horizon with Adam's ε = 1e-8."""
    source, fractions = bench.result_fractions(RESULTS, TODAY)
    assert (source, fractions) == ("", {})


def test_another_protocol_finds_no_committed_study(tmp_path: Path) -> None:
    changes: list[Mapping[str, Mapping[str, object]]] = [
        {"train": {"patience": 5000}},
        {"data": {"dataset": "fashion-mnist"}},
        {"model": {"hidden": [300, 300]}},
    ]
    for change in changes:
        assert bench.result_fractions(RESULTS, write_preset(tmp_path, change)) == ("", {})


def test_the_profile_takes_the_studys_stops_and_keeps_the_evidences_minima(
    tmp_path: Path,
) -> None:
    evidence = bench.load_profile(10_000, ROOT / "reports" / "patience" / CURVES_FILE)
    assert evidence is not None
    merged = bench.with_result_fractions(evidence, RESULTS, PAPER)
    assert merged is not None and merged.minima == evidence.minima
    assert "lenet-5trials-50k" in merged.source and str(CURVES_FILE) in merged.source
    # the evidence ran the controls at rounds 7, 11 and 15 only; the study at every round
    assert sorted(evidence.fractions["reinit"]) == [7, 11, 15]
    assert merged.fraction("reinit", 3) == bench.result_fractions(RESULTS, PAPER)[1]["reinit"][3]
    other = write_preset(tmp_path, {"train": {"patience": 5000}})
    assert bench.with_result_fractions(evidence, RESULTS, other) is evidence
