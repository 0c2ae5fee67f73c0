"""`lottery compare`: two kept studies side by side, computed from their
metrics, rows paired by % of weights remaining, the params that differ on top."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lottery.analysis import comparison, results, statistics
from lottery.analysis.comparison import Study, load_study, pair_rows
from lottery.analysis.protocol import ProtocolError
from lottery.core import io, paths
from lottery.core.params import generate_pipeline, read_yaml
from lottery.report import compare

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "reports" / "results"
TEN_K = RESULTS / "lenet-5trials-10k"


@pytest.fixture(scope="module")
def study() -> Study:
    return load_study(TEN_K)


def test_a_study_compared_with_itself_changes_nothing_and_keeps_its_censoring(
    study: Study,
) -> None:
    text = compare.render(study, study)
    runs = study.runs
    censored_cells = runs[runs["censored"]].groupby(["condition", "round"]).size()
    assert len(censored_cells) > 0  # the 10k study has censored cells: the check below bites
    n = len(censored_cells)
    assert f"0 of the {n} cells censored in lenet-5trials-10k are not censored" in text
    assert f"{int(runs['censored'].sum())} of {len(runs)} in lenet-5trials-10k" in text
    assert "Params that differ: none" in text and "protocols differ" not in text
    table = text.split("## Every shared cell")[1].split("## ")[0]
    changes = re.findall(
        r"\| ([+-]\d+\.\d\d) \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\] p ([\d.]+) (\w[\w ]*) \|$",
        table,
        re.M,
    )
    rows = pair_rows(study, study).rows
    assert len(rows) == len(runs.groupby(["condition", "round"]))  # every cell of the study
    assert all(r.base_round == r.new_round for r in rows)
    own = [c for c in changes if c[4] in ("up", "down", "no clear difference")]
    assert len(own) == len(rows)
    assert all(c[:4] == ("+0.00", "+0.00", "+0.00", "1.000") for c in own)
    assert all(c[4] == "no clear difference" for c in own)


def test_gaps_are_the_studys_own_paired_differences(study: Study) -> None:
    d = comparison.gap(study, "random", 15)
    expected = results.paired_difference(
        results.load(TEN_K), "test_accuracy_at_early_stop", ("ticket", 15), ("random", 15), 100.0
    )
    assert d == expected and d is not None and d.sign == 1


def test_the_cli_writes_the_comparison_and_refuses_a_root_without_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp.md"
    assert compare.main([str(TEN_K), str(TEN_K), "--out", str(out)]) == 0
    assert out.read_text().startswith("# lenet-5trials-10k compared with lenet-5trials-10k")
    with pytest.raises(SystemExit) as exit_:
        compare.main([str(tmp_path), str(TEN_K)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no per-run metrics" in err


def test_the_longer_horizon_frees_exactly_the_cells_its_runs_free(study: Study) -> None:
    longer = load_study(RESULTS / "lenet-5trials-50k")
    text = compare.render(study, longer)
    before = {k for k, g in study.runs.groupby(["condition", "round"]) if g["censored"].any()}
    after = {k for k, g in longer.runs.groupby(["condition", "round"]) if g["censored"].any()}
    freed = before - after
    assert freed  # the 10k study's censored cells: the listing below is not vacuous
    line = next(x for x in text.splitlines() if x.startswith("- Censored in lenet-5trials-10k,"))
    listed = set(re.findall(r"(\w+) round (\d+) \(", line))
    assert listed == {(c, str(r)) for c, r in freed}
    both = next(x for x in text.splitlines() if x.startswith("- Censored in both:"))
    assert (both == "- Censored in both: none.") == (not before & after)


def test_a_base_without_censored_cells_says_so() -> None:
    base = load_study(RESULTS / "lenet-5trials-50k")
    new = load_study(RESULTS / "lenet-5trials-50k-3draws")
    assert not base.runs["censored"].any()  # the 50k study has none: the wording case
    text = compare.render(base, new)
    assert "no shared cell is censored in lenet-5trials-50k." in text
    assert "0 of the 0 cells" not in text
    # The study with 3 draws has 3 reinit runs per trial and round, the other 1.
    assert len(new.runs[new.runs["condition"] == "reinit"]) == 3 * len(
        base.runs[base.runs["condition"] == "reinit"]
    )


#: Each committed comparison: (BASE, NEW) study roots; the file lives in NEW.
COMPARISONS = [
    ("lenet-5trials-10k", "lenet-5trials-50k"),
    ("lenet-5trials-50k", "lenet-5trials-50k-3draws"),
    ("lenet-5trials-50k-3draws", "lenet-5trials-50k-horizon"),
]


@pytest.mark.parametrize(("base", "new"), COMPARISONS)
def test_committed_comparison_is_regenerated_from_the_metrics(base: str, new: str) -> None:
    committed = (RESULTS / new / "comparison.md").read_text()
    assert compare.render(load_study(RESULTS / base), load_study(RESULTS / new)) == committed
    assert sorted(p.parent.name for p in RESULTS.glob("*/comparison.md")) == sorted(
        n for _, n in COMPARISONS
    )


def test_changes_of_one_condition_are_one_holm_family() -> None:
    base = load_study(RESULTS / "lenet-5trials-50k")
    new = load_study(RESULTS / "lenet-5trials-50k-3draws")
    rows = pair_rows(base, new).rows
    moved = comparison.changes(base, new, rows)
    reinit = [r for r in rows if r.condition == "reinit"]
    diffs = [moved[r][0] for r in reinit]
    raw = [d.p_value for d in diffs if d is not None and d.p_value is not None]
    assert len(raw) == 15
    adjusted = [moved[r][1] for r in reinit]
    assert adjusted == pytest.approx(statistics.holm(raw))
    # Holm never makes a test less strict: it calls no more changes real than raw p does.
    raw_calls = sum(p < 0.05 for p in raw)
    holm_calls = sum(p is not None and p < 0.05 for p in adjusted)
    assert holm_calls <= raw_calls
    line = compare.compact(*moved[reinit[0]], "up", "down")
    assert re.fullmatch(
        r"[+-]\d\.\d\d \[[+-]\d\.\d\d, [+-]\d\.\d\d\] p [\d.<> ]+ (up|down|no clear difference)",
        line,
    )


# ------------------------------------------------- pairing by sparsity, params, protocol


def kept_copy(dest: Path, src: Path = TEN_K, params_text: str | None = None) -> Path:
    """A kept study at `dest`: `src`'s metrics and params.yaml (or `params_text`)."""
    shutil.copytree(src / "metrics", dest / "metrics")
    (dest / "params.yaml").write_text(params_text or (src / "params.yaml").read_text())
    return dest


def every_other_round(dest: Path, src: Path = TEN_K) -> Path:
    """A kept study pruning twice as fast as `src` (fc 1 − 0.8² = 0.36, out 1 − 0.9² = 0.19
    per round): its round k is `src`'s round 2k, metrics and all, so its % of weights
    remaining at round k is exactly `src`'s at 2k."""
    params = read_yaml((src / "params.yaml").read_text())
    rounds = params["study"]["rounds"] // 2
    params["study"]["rounds"] = rounds
    params["prune"]["rates"] = {"fc1": 0.36, "fc2": 0.36, "out": 0.19}
    params["pipeline"] = generate_pipeline(rounds, True, True)
    (dest / "params.yaml").parent.mkdir(parents=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for path in sorted((src / "metrics").glob("*/*.json")):
        m: dict[str, Any] = json.loads(path.read_text())
        if m["round"] % 2 == 0 and m["round"] // 2 <= rounds:
            m["round"] //= 2
            name = paths.round_name(m["round"])
            io.write_json(dest / paths.metrics_path(m["condition"], name), m)
    return dest


def test_rows_pair_by_percent_remaining_not_by_round(tmp_path: Path, study: Study) -> None:
    fast = load_study(every_other_round(tmp_path / "fast"))
    pairing = pair_rows(study, fast)
    # Round by round, round 5 would be 32.9% remaining in one study and 10.8% in the other.
    assert fmt(study, ("ticket", 5)) == "32.9" and fmt(fast, ("ticket", 5)) == "10.8"
    ticket = {(r.base_round, r.new_round) for r in pairing.rows if r.condition == "ticket"}
    assert ticket == {(2 * k, k) for k in range(8)}
    assert all(study.percent[r.base] == fast.percent[r.new] for r in pairing.rows)
    # The odd rounds of the slower study have no partner: unmatched, not paired.
    odd = {(c, r) for c, r in study.cells if r % 2}
    assert set(pairing.only_base) == odd and pairing.only_new == ()
    text = compare.render(study, fast)
    assert "| ticket r10 / r05 | 10.8 |" in text
    assert "| reinit r10 / r05 | 10.8 |" in text
    assert "random-prune control at round 14 / 7 (4.5% of weights remaining)" in text
    assert "Unmatched rows, only in lenet-5trials-10k (not paired): ticket round 1 (80.0%);" in text
    assert "only in fast" not in text
    # The other way round, the unmatched rows are NEW's.
    back = pair_rows(fast, study)
    assert set(back.only_new) == odd and back.only_base == ()
    assert "Unmatched rows, only in lenet-5trials-10k" in compare.render(fast, study)


def fmt(s: Study, key: comparison.CellKey) -> str:
    return f"{s.percent[key]:.1f}"


def test_the_params_that_differ_are_listed_and_the_protocol_difference_warned(
    tmp_path: Path, study: Study
) -> None:
    fast = load_study(every_other_round(tmp_path / "fast"))
    text = compare.render(study, fast)
    head = text.split("Computed by")[0]
    for line in (
        "| param | lenet-5trials-10k | fast |",
        "| prune.rates.fc1 | 0.2 | 0.36 |",
        "| prune.rates.out | 0.1 | 0.19 |",
        "| study.rounds | 15 | 7 |",
    ):
        assert line in head.splitlines()
    warning = next(x for x in head.splitlines() if x.startswith("protocols differ: "))
    rates = "prune.rates.fc1, prune.rates.fc2, prune.rates.out"
    assert warning.startswith(f"protocols differ: {rates}. A change NEW − BASE below")
    assert "study.rounds" not in warning  # fewer rounds change no paired row


def test_a_learning_rate_spelled_in_yaml_1_2_is_the_same_param(
    tmp_path: Path, study: Study
) -> None:
    """`1.2e-3` is 0.0012 to DVC (YAML 1.2); PyYAML's YAML 1.1 would read a string and
    list a difference that is none."""
    text = (TEN_K / "params.yaml").read_text()
    assert "learning_rate: 0.0012 " in text
    same = kept_copy(tmp_path / "same", params_text=text.replace("0.0012 ", "1.2e-3 "))
    assert "Params that differ: none" in compare.render(study, load_study(same))
    faster = kept_copy(tmp_path / "lr", params_text=text.replace("0.0012 ", "2.4e-3 "))
    head = compare.render(study, load_study(faster)).split("Computed by")[0]
    assert "| train.learning_rate | 0.0012 | 0.0024 |" in head.splitlines()
    assert "protocols differ: train.learning_rate. A change NEW − BASE below is the effect" in head


def test_a_study_of_another_dataset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    fashion = RESULTS / "lenet-fashion-5trials-10k"
    with pytest.raises(SystemExit) as exit_:
        compare.main([str(TEN_K), str(fashion)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: lenet-5trials-10k and lenet-fashion-5trials-10k train different networks or "
        "datasets (data.dataset (mnist → fashion-mnist))"
    )
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_a_study_of_another_network_is_refused(tmp_path: Path, study: Study) -> None:
    text = (
        (TEN_K / "params.yaml")
        .read_text()
        .replace("\ndata:", "\nmodel:\n  network: mlp\n  hidden: [300]\n\ndata:")
    )
    narrow = load_study(kept_copy(tmp_path / "narrow", params_text=text))
    with pytest.raises(ProtocolError, match=r"model\.hidden \(\[300, 100\] → \[300\]\)"):
        compare.render(study, narrow)
