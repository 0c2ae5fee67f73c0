"""Figures and dvc plot tables, built from crafted masks, metrics and curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from lottery.analysis import results
from lottery.core import arch, paths
from lottery.core.arch import LAYER_SHAPES
from lottery.core.conditions import REGISTRY
from lottery.report import canvas, dvc_tables
from lottery.report import figures as plots
from lottery.report import mask_figures as mask_plots
from lottery.report import text as report
from tests.helpers import assert_png


def run(es: float, acc: float, final: float | None = None) -> dict[str, Any]:
    return {
        "early_stop_iteration": es,
        "test_accuracy_at_early_stop": acc,
        "val_accuracy_at_early_stop": acc,
        "test_accuracy_at_stop": acc - 0.002 if final is None else final,
    }


def metrics(condition: str, rnd: int, pct: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    keyed = {
        f"t{i}": {"trial": i, "repeat": 0, "percent_remaining": pct, **r}
        for i, r in enumerate(runs)
    }
    summary = {
        k: {
            "mean": float(np.mean([r[k] for r in runs])),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in ("early_stop_iteration", "test_accuracy_at_early_stop", "test_accuracy_at_stop")
    }
    return {
        "round": rnd,
        "condition": condition,
        "percent_remaining": pct,
        "eval_every": 100,
        "iterations": 2000,
        "patience": 0,
        "density": {"fc1": pct / 100, "fc2": pct / 100, "out": 0.9**rnd, "overall": pct / 100},
        "runs": keyed,
        "summary": summary,
    }


def study_metrics() -> list[dict[str, Any]]:
    """Ticket rounds 0..3 (two runs), reinit and random rounds 1..3 (two runs)."""
    out = [metrics("ticket", 0, 100.0, [run(1000, 0.980), run(1200, 0.982)])]
    for k in (1, 2, 3):
        pct = 100 * 0.8**k
        out.append(metrics("ticket", k, pct, [run(900 - 100 * k, 0.983), run(800, 0.985)]))
        out.append(metrics("reinit", k, pct, [run(1100, 0.975 - 0.01 * k), run(1300, 0.97)]))
        out.append(metrics("random", k, pct, [run(1200, 0.972 - 0.01 * k), run(1000, 0.96)]))
    return out


def fc1_random(seed: int, density: float) -> np.ndarray:
    return np.random.default_rng(seed).random(LAYER_SHAPES["fc1"]) < density


def full_mask(seed: int, density: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.random(shape) < density for name, shape in LAYER_SHAPES.items()}


def curves(rnd: int, n_runs: int, n_evals: int = 5) -> dict[str, Any]:
    runs = {}
    for t in range(n_runs):
        its = [100 * (i + 1) for i in range(n_evals)]
        acc = [0.9 + 0.01 * i + 0.001 * t for i in range(n_evals)]
        runs[f"t{t}"] = {"iteration": its, "test_accuracy": acc, "val_loss": [0.1] * n_evals}
    return {"round": rnd, "condition": "ticket", "runs": runs}


# ----------------------------------------------------------------------- pixel map


def test_pixel_counts_on_hand_made_mask() -> None:
    mask = np.zeros((784, 300), dtype=bool)
    mask[0, :5] = True  # pixel (0, 0): 5 connections
    mask[3 * 28 + 4, [1, 7]] = True  # pixel (3, 4): 2
    mask[783, :] = True  # pixel (27, 27): all 300
    counts = mask_plots.pixel_counts(mask)
    assert counts.shape == (28, 28)
    assert counts[0, 0] == 5 and counts[3, 4] == 2 and counts[27, 27] == 300
    assert counts.sum() == 5 + 2 + 300 == mask.sum()
    assert np.count_nonzero(counts) == 3


def test_pixel_counts_match_per_pixel_sums() -> None:
    mask = fc1_random(0, 0.3)
    counts = mask_plots.pixel_counts(mask)
    assert counts.sum() == mask.sum()
    for i in (0, 27, 28, 400, 783):
        assert counts[i // 28, i % 28] == mask[i].sum()
    # 0/1 integer masks are accepted and give the same counts.
    np.testing.assert_array_equal(mask_plots.pixel_counts(mask.astype(np.int8)), counts)


def test_pixel_counts_rejects_bad_masks() -> None:
    with pytest.raises(ValueError, match="shape"):
        mask_plots.pixel_counts(np.ones((300, 100), dtype=bool))
    with pytest.raises(ValueError, match="0/1"):
        mask_plots.pixel_counts(np.full((784, 300), 0.5))


# ------------------------------------------------------------------------- figures


def test_mask_figures_are_pngs_of_the_documented_size(tmp_path: Path) -> None:
    mask = np.zeros((784, 300), dtype=bool)
    mask[:392] = True  # top half kept
    p1 = mask_plots.first_layer_mask_image(mask, tmp_path / "sub" / "mask.png", "mask")
    p2 = mask_plots.pixel_connection_map(mask, tmp_path / "map.png", "map")
    assert p1 == tmp_path / "sub" / "mask.png"
    assert_png(p1, canvas.MASK_FIGSIZE)
    assert_png(p2, canvas.PIXEL_FIGSIZE)
    # The two colours really are drawn: the kept colour and the pruned colour both appear.
    import matplotlib.image as mpimg

    rgb = (mpimg.imread(p1)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    colors = {tuple(c) for c in np.unique(rgb, axis=0)}
    assert (0x1F, 0x4E, 0x79) in colors  # KEPT_COLOR
    assert (0xEE, 0xEE, 0xEE) in colors  # PRUNED_COLOR


def test_accuracy_plot_has_one_line_and_band_per_condition(tmp_path: Path) -> None:
    m = study_metrics()
    fig = plots.accuracy_figure(m)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left > 100 > right  # reversed: 100% on the left
    labels = ax.get_legend_handles_labels()[1]
    assert [lbl.split()[0] for lbl in labels] == ["winning", "reinit", "random-prune"]
    # Legends and colours are the condition registry's.
    assert labels == [c.legend for c in REGISTRY.values()]
    assert [ln.get_color() for ln in ax.get_lines()] == [c.colour for c in REGISTRY.values()]
    # The ticket line goes through the mean accuracy (in %) of each round.
    xs, ys = ax.get_lines()[0].get_data()
    np.testing.assert_allclose(np.asarray(xs), [100.0, 80.0, 64.0, 51.2])
    np.testing.assert_allclose(np.asarray(ys), [98.1, 98.4, 98.4, 98.4])
    assert_png(plots.accuracy_vs_remaining(m, tmp_path / "acc.png"), canvas.LINE_FIGSIZE)
    assert_png(plots.early_stop_vs_remaining(m, tmp_path / "es.png"), canvas.LINE_FIGSIZE)


def test_single_condition_single_run_draws_no_band(tmp_path: Path) -> None:
    m = [metrics("ticket", k, 100 * 0.8**k, [run(1000 - 100 * k, 0.98)]) for k in range(3)]
    for fig in (plots.accuracy_figure(m), plots.early_stop_figure(m)):
        ax = fig.axes[0]
        assert len(ax.get_lines()) == 1
        assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert_png(plots.accuracy_vs_remaining(m, tmp_path / "a.png"), canvas.LINE_FIGSIZE)
    # A single point (round 0 only) and no metrics at all still give a figure.
    assert_png(plots.accuracy_vs_remaining(m[:1], tmp_path / "b.png"), canvas.LINE_FIGSIZE)
    assert_png(plots.early_stop_vs_remaining([], tmp_path / "c.png"), canvas.LINE_FIGSIZE)


def test_condition_series_statistics() -> None:
    series = results.condition_series(study_metrics(), "early_stop_iteration")
    assert list(series) == ["ticket", "reinit", "random"]
    t = series["ticket"]
    assert t.rounds == [0, 1, 2, 3]
    assert t.mean == [1100.0, 800.0, 750.0, 700.0]
    assert t.low == [1000, 800, 700, 600] and t.high == [1200, 800, 800, 800]
    assert t.n_censored == [0, 0, 0, 0]
    assert t.has_band


def test_censored_points_are_hollow_and_explained() -> None:
    m = study_metrics()
    # reinit round 3: one of its two runs reached its minimum at the last evaluation.
    m[-2]["runs"]["t0"]["early_stop_iteration"] = 2000
    fig = plots.early_stop_figure(m)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4  # three conditions + the hollow censored marker
    hollow = [ln for ln in lines if ln.get_label() == "_censored"]
    assert len(hollow) == 1 and hollow[0].get_markerfacecolor() == "white"
    np.testing.assert_allclose(np.asarray(hollow[0].get_xdata()), [51.2])
    np.testing.assert_allclose(np.asarray(hollow[0].get_ydata()), [1650.0])
    reinit = next(ln for ln in lines if str(ln.get_label()).startswith("reinit"))
    assert reinit.get_markevery() == [0, 1]  # filled markers only where nothing is censored
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()][-1] == plots.CENSORED_LABEL
    # Without censored runs there is no hollow marker and no legend note.
    clean = plots.early_stop_figure(study_metrics()).axes[0].get_legend()
    assert clean is not None
    assert plots.CENSORED_LABEL not in [t.get_text() for t in clean.get_texts()]


def test_importing_plots_leaves_the_backend_alone() -> None:
    """A notebook's backend survives importing the report package's figure modules, and
    figures still render."""
    code = (
        "import matplotlib; matplotlib.use('pdf'); "
        "from lottery.report import regenerate; "
        "from lottery.report import figures as plots; "
        "assert matplotlib.get_backend() == 'pdf', matplotlib.get_backend(); "
        "import io; buf = io.BytesIO(); "
        "plots.accuracy_figure([]).savefig(buf, format='png'); "
        "assert buf.getvalue()[:8] == b'\\x89PNG\\r\\n\\x1a\\n'"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_density_by_round(tmp_path: Path) -> None:
    dens = {k: {"fc1": 0.8**k, "fc2": 0.8**k, "out": 0.9**k, "overall": 0.805**k} for k in range(4)}
    fig = mask_plots.density_by_round_figure(dens)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_legend_handles_labels()[1] == ["fc1", "fc2", "out", "overall"]
    np.testing.assert_allclose(np.asarray(ax.get_lines()[2].get_ydata()), [100, 90, 81, 72.9])
    assert_png(mask_plots.layer_density_by_round(dens, tmp_path / "d.png"), canvas.LINE_FIGSIZE)


def test_densities_from_masks_average_trials() -> None:
    a = {name: np.ones(shape, dtype=bool) for name, shape in LAYER_SHAPES.items()}
    b = {name: np.zeros(shape, dtype=bool) for name, shape in LAYER_SHAPES.items()}
    b["fc1"][:392] = True  # half of fc1
    d = mask_plots.densities_from_masks({1: {0: a, 1: b}})
    assert d[1]["fc1"] == pytest.approx(0.75)
    assert d[1]["out"] == pytest.approx(0.5)
    assert d[1]["overall"] == pytest.approx((1.0 + 392 * 300 / 266_200) / 2)


# ------------------------------------------------------------------ other networks


def test_conv_channel_density_on_hand_made_mask() -> None:
    mask = np.zeros((3, 3, 2, 4), dtype=bool)
    mask[:, :, 0, 1] = True  # the whole kernel of input channel 0 -> output channel 1
    mask[0, 2, 1, 3] = True  # one of the nine weights of 1 -> 3
    d = mask_plots.conv_channel_density(mask)
    assert d.shape == (2, 4)
    assert d[0, 1] == 1.0 and d[1, 3] == pytest.approx(1 / 9)
    assert d.sum() == pytest.approx(1 + 1 / 9)
    with pytest.raises(ValueError, match="shape"):
        mask_plots.conv_channel_density(np.ones((784, 300), dtype=bool))
    with pytest.raises(ValueError, match="0/1"):
        mask_plots.conv_channel_density(np.full((3, 3, 1, 2), 0.5))


def test_mask_figures_follow_the_network(tmp_path: Path) -> None:
    """Conv layers get their channel-pair maps; a dense first layer its mask; the pixel map
    only where that layer sees a one-channel image."""
    conv = arch.build("conv4", (32, 32, 3))
    rng = np.random.default_rng(0)
    masks = {n: rng.random(s) < 0.5 for n, s in conv.kernel_shapes.items()}
    out = mask_plots.mask_figures(masks, 2, 0, conv, tmp_path / "conv")
    assert set(out) == {f"masks/r02_conv{i}_mask" for i in range(1, 5)}
    for name, path in out.items():
        assert path == tmp_path / "conv" / f"{name}.png"
        assert_png(path, canvas.CONV_FIGSIZE)
        assert paths.parse_mask_figure(name) == (2, f"{name[-10:-5]}_mask")
    assert report.figure_caption("masks/r02_conv3_mask") == (
        "Round 2: conv3 mask, fraction of each kernel kept per channel pair"
    )
    colour = arch.build("mlp", (32, 32, 3), (64,))
    masks = {n: np.ones(s, dtype=bool) for n, s in colour.kernel_shapes.items()}
    out = mask_plots.mask_figures(masks, 1, 0, colour, tmp_path / "mlp")
    assert set(out) == {"masks/r01_fc1_mask"}  # 3072 inputs of three channels: no pixel map
    assert_png(out["masks/r01_fc1_mask"], canvas.MASK_FIGSIZE)
    narrow = arch.build("mlp", (28, 28, 1), (64, 32))
    masks = {n: np.ones(s, dtype=bool) for n, s in narrow.kernel_shapes.items()}
    assert set(mask_plots.mask_figures(masks, 0, 0, narrow, tmp_path / "n")) == set(
        paths.mask_figure_names(0)
    )


def test_density_by_round_keeps_the_networks_layer_order() -> None:
    layers = ["conv1", "conv2", "fc1", "fc2", "out"]
    dens = {k: {**{n: 0.9**k for n in layers}, "overall": 0.9**k} for k in range(3)}
    labels = mask_plots.density_by_round_figure(dens).axes[0].get_legend_handles_labels()[1]
    assert labels == [*layers, "overall"]


# ------------------------------------------------------------------- learning curves


def test_choose_rounds_picks_closest_levels() -> None:
    pct = {k: 100 * 0.8**k for k in range(21)}
    # 100 -> 0; 51 -> 51.2 (3); 21 -> 20.97 (7); 7 -> 6.87 (12); 3.6 -> 3.52 (15)
    assert plots.choose_rounds(pct) == [0, 3, 7, 12, 15]
    assert plots.choose_rounds({0: 100.0, 1: 80.0}) == [0, 1]  # unique, only those available
    assert plots.choose_rounds({}) == []
    assert plots.choose_rounds({2: 42.0, 1: 60.0}, targets=(51,)) == [1]  # tie: earlier round
    assert plots.choose_rounds(pct, targets=(3.6, 100)) == [0, 15]  # sorted


def test_curve_band_aligns_runs_of_different_length() -> None:
    c = curves(1, n_runs=2, n_evals=4)
    c["runs"]["t1"]["iteration"] = c["runs"]["t1"]["iteration"][:3]
    c["runs"]["t1"]["test_accuracy"] = c["runs"]["t1"]["test_accuracy"][:3]
    its, mean, low, high, n = plots.curve_band(c)
    assert n == 2
    assert its.tolist() == [100, 200, 300]
    np.testing.assert_allclose(mean, [0.9005, 0.9105, 0.9205])
    np.testing.assert_allclose(low, [0.90, 0.91, 0.92])
    np.testing.assert_allclose(high, [0.901, 0.911, 0.921])


def test_curve_band_plots_test_metrics_on_their_own_grid() -> None:
    c = curves(1, n_runs=2, n_evals=4)
    for t, r in enumerate(c["runs"].values()):
        r["test_iteration"] = [200, 400]
        r["test_accuracy"] = [0.95 + 0.01 * t, 0.96 + 0.01 * t]
    its, mean, _, _, n = plots.curve_band(c)
    assert n == 2 and its.tolist() == [200, 400]
    np.testing.assert_allclose(mean, [0.955, 0.965])
    its, mean, _, _, _ = plots.curve_band(c, "val_loss")  # validation stays on `iteration`
    assert its.tolist() == [100, 200, 300, 400]


def test_learning_curves_lines_bands_and_legend(tmp_path: Path) -> None:
    by_round = {k: metrics("ticket", k, 100 * 0.8**k, [run(1000, 0.98)]) for k in range(5)}
    cur = {k: curves(k, n_runs=2) for k in range(5)}
    fig = plots.learning_curves_figure(cur, by_round, targets=(100, 51))
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
    assert ax.get_legend_handles_labels()[1] == [
        "100% remaining (round 0)",
        "51.2% remaining (round 3)",
    ]
    single = plots.learning_curves_figure({0: curves(0, n_runs=1)}, by_round)
    assert not [c for c in single.axes[0].collections if isinstance(c, PolyCollection)]
    path = plots.learning_curves(cur, by_round, tmp_path / "lc.png")
    assert_png(path, canvas.LINE_FIGSIZE)


# ------------------------------------------------------------------------ dvc plots


def test_dvc_rows_cover_every_condition_and_round(tmp_path: Path) -> None:
    m = study_metrics()
    tables = dvc_tables.dvc_plot_rows(m)
    assert list(tables) == ["accuracy_ticket.json", "accuracy_reinit.json", "accuracy_random.json"]
    got = {(r["condition"], r["round"]) for rows in tables.values() for r in rows}
    assert got == {(x["condition"], x["round"]) for x in m}
    row = tables["accuracy_ticket.json"][0]
    assert row["round"] == 0 and row["percent_remaining"] == 100.0 and row["n_runs"] == 2
    assert row["test_accuracy"] == pytest.approx(98.1)  # in %, as everywhere
    assert (row["test_accuracy_min"], row["test_accuracy_max"]) == pytest.approx((98.0, 98.2))
    assert (row["early_stop_iteration_min"], row["early_stop_iteration_max"]) == (1000, 1200)
    assert row["test_accuracy_at_stop"] == pytest.approx(97.9)
    assert row["n_censored"] == 0 and row["n_trials"] == 2
    # Two trials: no interval.
    assert row["test_accuracy_ci_low"] is None and row["test_accuracy_ci_high"] is None
    assert "ticket_minus_control_pp" not in row
    # Controls carry the paired ticket − control difference (pp): round 1, trials 0 and 1:
    # ticket 98.3, 98.5; reinit 96.5, 97.0 -> +1.8, +1.5.
    reinit = tables["accuracy_reinit.json"][0]
    assert reinit["round"] == 1
    assert reinit["ticket_minus_control_pp"] == pytest.approx(1.65)
    assert reinit["ticket_minus_control_pp_ci_low"] is None

    paths = dvc_tables.write_dvc_plot_tables(tables, tmp_path / "plots")
    for name, path in paths.items():
        loaded = json.loads(path.read_text())
        assert isinstance(loaded, list) and loaded == tables[name]
    with pytest.raises(ValueError, match="JSON"):
        dvc_tables.write_dvc_plot_tables({"accuracy.csv": []}, tmp_path / "plots")


# ------------------------------------------------------------------------ render_all


def test_render_all_writes_every_figure(tmp_path: Path) -> None:
    masks = {0: {0: full_mask(0, 1.0)}, 1: {1: full_mask(2, 0.5), 0: full_mask(1, 0.8)}}
    m = study_metrics()
    cur = {"ticket": {k: curves(k, 2) for k in range(4)}}
    out = plots.render_all(masks, m, cur, tmp_path / "figs", arch.LENET)
    expected = {
        "accuracy_vs_remaining",
        "end_accuracy_vs_remaining",
        "early_stop_vs_remaining",
        "learning_curves",
        "density_by_round",
        "masks/r00_fc1_mask",
        "masks/r00_pixel_map",
        "masks/r01_fc1_mask",
        "masks/r01_pixel_map",
    }
    assert set(out) == expected
    for name, path in out.items():
        assert path == tmp_path / "figs" / f"{name}.png"
        if name.endswith("fc1_mask"):
            assert_png(path, canvas.MASK_FIGSIZE)
        elif name.endswith("pixel_map"):
            assert_png(path, canvas.PIXEL_FIGSIZE)
        else:
            assert_png(path, canvas.LINE_FIGSIZE)
    # The mask figures show trial 0 (the lowest id), not the first key of the mapping.
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # nothing left open in pyplot


def test_render_all_with_no_data_still_writes_summary_figures(tmp_path: Path) -> None:
    out = plots.render_all({}, [], {}, tmp_path, arch.LENET)
    assert set(out) == set(plots.SUMMARY_FIGURES)
    for path in out.values():
        assert_png(path, canvas.LINE_FIGSIZE)
