"""`lottery compare`: two kept studies side by side, computed from their metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lottery.analysis import results, statistics
from lottery.report import compare

ROOT = Path(__file__).resolve().parents[1]
TEN_K = ROOT / "reports" / "results" / "lenet-5trials-10k"


@pytest.fixture(scope="module")
def study() -> compare.Study:
    return compare.load(TEN_K)


def test_a_study_compared_with_itself_changes_nothing_and_keeps_its_censoring(
    study: compare.Study,
) -> None:
    text = compare.render(study, study)
    runs = study.runs
    censored_cells = runs[runs["censored"]].groupby(["condition", "round"]).size()
    assert len(censored_cells) > 0  # the 10k study has censored cells: the check below bites
    n = len(censored_cells)
    assert f"0 of the {n} cells censored in lenet-5trials-10k are not censored" in text
    assert f"{int(runs['censored'].sum())} of {len(runs)} in lenet-5trials-10k" in text
    table = text.split("## Every shared cell")[1].split("## ")[0]
    table = text.split("## Every shared cell")[1].split("## ")[0]
    changes = re.findall(
        r"\| ([+-]\d+\.\d\d) \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\] p ([\d.]+) (\w[\w ]*) \|$",
        table,
        re.M,
    )
    cells = compare.shared_cells(study, study)
    assert len(cells) == len(runs.groupby(["condition", "round"]))  # every cell of the study
    own = [c for c in changes if c[4] in ("up", "down", "no clear difference")]
    assert len(own) == len(cells)
    assert all(c[:4] == ("+0.00", "+0.00", "+0.00", "1.000") for c in own)
    assert all(c[4] == "no clear difference" for c in own)


def test_gaps_are_the_studys_own_paired_differences(study: compare.Study) -> None:
    d = compare.gap(study, "random", 15)
    expected = results.paired_difference(
        results.load(TEN_K), "test_accuracy_at_early_stop", ("ticket", 15), ("random", 15), 100.0
    )
    assert d == expected and d is not None and d.sign == 1


def test_the_cli_writes_the_comparison_and_refuses_a_root_without_metrics(tmp_path: Path) -> None:
    out = tmp_path / "cmp.md"
    assert compare.main([str(TEN_K), str(TEN_K), "--out", str(out)]) == 0
    assert out.read_text().startswith("# lenet-5trials-10k compared with lenet-5trials-10k")
    with pytest.raises(SystemExit, match="no per-run metrics"):
        compare.main([str(tmp_path), str(TEN_K)])


def test_the_longer_horizon_frees_exactly_the_cells_its_runs_free(study: compare.Study) -> None:
    longer = compare.load(ROOT / "reports" / "results" / "lenet-5trials-50k")
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
    base = compare.load(ROOT / "reports" / "results" / "lenet-5trials-50k")
    new = compare.load(ROOT / "reports" / "results" / "lenet-5trials-50k-3draws")
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
]


@pytest.mark.parametrize(("base", "new"), COMPARISONS)
def test_committed_comparison_is_regenerated_from_the_metrics(base: str, new: str) -> None:
    results_dir = ROOT / "reports" / "results"
    committed = (results_dir / new / "comparison.md").read_text()
    assert compare.render(compare.load(results_dir / base), compare.load(results_dir / new)) == (
        committed
    )
    assert sorted(p.parent.name for p in results_dir.glob("*/comparison.md")) == sorted(
        n for _, n in COMPARISONS
    )


def test_changes_of_one_condition_are_one_holm_family() -> None:
    base = compare.load(ROOT / "reports" / "results" / "lenet-5trials-50k")
    new = compare.load(ROOT / "reports" / "results" / "lenet-5trials-50k-3draws")
    cells = compare.shared_cells(base, new)
    moved = compare.changes(base, new, cells)
    reinit = [k for k in cells if k[0] == "reinit"]
    diffs = [moved[k][0] for k in reinit]
    raw = [d.p_value for d in diffs if d is not None and d.p_value is not None]
    assert len(raw) == 15
    adjusted = [moved[k][1] for k in reinit]
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
