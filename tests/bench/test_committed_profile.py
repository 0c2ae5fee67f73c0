"""The paper estimate's stopping profile: a committed study of the preset's protocol gives
where every network's early stop settled at every round; other protocols fall back on the
patience evidence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from lottery.analysis.patience import CURVES_FILE
from lottery.bench import profile as bench

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "reports" / "results"
#: The protocol the committed 50,000-iteration studies ran (before `prune.point` and
#: `train.adam_epsilon`: pruned where patience stopped).
PAPER = ROOT / "reports" / "results" / "lenet-5trials-50k" / "params.yaml"


def write_preset(tmp_path: Path, change: Mapping[str, Mapping[str, object]]) -> Path:
    raw = yaml.safe_load(PAPER.read_text())
    for section, values in change.items():
        raw.setdefault(section, {}).update(values)
    out = tmp_path / "preset.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def test_the_committed_paper_scale_study_gives_every_rounds_stops() -> None:
    """Those studies stopped every network where its early stop settled, so the settle
    points are the recorded stops."""
    source, settled = bench.study_settled(RESULTS, PAPER)
    assert source == str(RESULTS / "lenet-5trials-50k")
    assert set(settled) == {"ticket", "reinit", "random"}
    assert sorted(settled["ticket"]) == list(range(16))
    assert sorted(settled["reinit"]) == sorted(settled["random"]) == list(range(1, 16))
    # read independently: round 15's random-prune runs, in the metrics file's order
    m = json.loads((RESULTS / "lenet-5trials-50k/metrics/random/r15.json").read_text())
    stops = [r["stop_iteration"] / 50_000 for r in m["runs"].values()]
    assert settled["random"][15] == stops and len(stops) == 5
    patience = yaml.safe_load(PAPER.read_text())["train"]["patience"]
    for rounds in settled.values():
        for runs in rounds.values():
            assert all(patience / 50_000 <= f <= 1.0 for f in runs)


def test_another_protocol_finds_no_committed_study(tmp_path: Path) -> None:
    """A study that pruned where patience stopped prices no preset that prunes at a
    pruning point (today's paper preset prunes at the horizon), nor another patience,
    dataset or network."""
    changes: list[Mapping[str, Mapping[str, object]]] = [
        {"prune": {"point": "horizon"}},
        {"train": {"patience": 5000}},
        {"data": {"dataset": "fashion-mnist"}},
        {"model": {"hidden": [300, 300]}},
    ]
    for change in changes:
        assert bench.study_settled(RESULTS, write_preset(tmp_path, change)) == ("", {})


def test_the_profile_takes_the_studys_stops_and_keeps_the_evidences_minima(
    tmp_path: Path,
) -> None:
    evidence = bench.load_profile(10_000, ROOT / "reports" / "patience" / CURVES_FILE)
    assert evidence is not None
    merged = bench.with_study_settled(evidence, RESULTS, PAPER)
    assert merged is not None and merged.minima == evidence.minima
    assert "lenet-5trials-50k" in merged.source and str(CURVES_FILE) in merged.source
    # both ran the controls at every round; where both have a round, the study's stops win
    assert sorted(evidence.settled["reinit"]) == list(range(1, 16))
    study = bench.study_settled(RESULTS, PAPER)[1]["reinit"][3]
    assert evidence.settled_at("reinit", 3) != study  # the assertion below can fail
    assert merged.settled_at("reinit", 3) == study
    other = write_preset(tmp_path, {"train": {"patience": 5000}})
    assert bench.with_study_settled(evidence, RESULTS, other) is evidence
