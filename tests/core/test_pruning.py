"""lottery.pruning on hand-made arrays, plus properties over random weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lottery.core import pruning
from lottery.core.arch import LAYER_SHAPES, LAYERS, LENET
from lottery.core.masks import Mask, ones_mask

RATES = {"fc1": 0.2, "fc2": 0.2, "out": 0.1}
NO_PRUNE = {"fc1": 0.0, "fc2": 0.0, "out": 0.0}


def random_kernels(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in LAYER_SHAPES.items()}


def ranked_kernels() -> dict[str, np.ndarray]:
    """Kernels whose |w| is the flat index + 1 (distinct magnitudes), signs alternating."""
    out = {}
    for layer, shape in LAYER_SHAPES.items():
        n = math.prod(shape)
        mags = np.arange(1, n + 1, dtype=np.float32)
        signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)
        out[layer] = (mags * signs).reshape(shape)
    return out


def count(mask: Mask, layer: str) -> int:
    return int(np.count_nonzero(mask[layer]))


def assert_shrinks(new: Mask, old: Mask) -> None:
    for layer in LAYERS:
        assert not (new[layer] & ~old[layer]).any(), f"{layer}: a pruned weight was revived"


# --------------------------------------------------------------------------- counts


def test_prune_count_round_half_up() -> None:
    assert pruning.prune_count(0.2, 10) == 2
    assert pruning.prune_count(0.1, 5) == 1  # 0.5 rounds up
    assert pruning.prune_count(0.1, 25) == 3  # 2.5 rounds up
    assert pruning.prune_count(0.1, 35) == 4  # 3.5 rounds up
    assert pruning.prune_count(0.1, 34) == 3  # 3.4 rounds down
    assert pruning.prune_count(0.2, 2) == 0  # 0.4 rounds down
    assert pruning.prune_count(0.0, 1000) == 0
    # Exact decimal arithmetic: every k + 0.5 rounds up for these rates.
    for rate, n_per_half in ((0.1, 5), (0.2, 5 / 2), (0.25, 2)):
        for k in range(200):
            n = (2 * k + 1) * n_per_half
            if float(n).is_integer():
                assert pruning.prune_count(rate, int(n)) == k + 1


def test_layerwise_exact_counts_first_round() -> None:
    m = pruning.prune_magnitude(random_kernels(0), ones_mask(LENET), RATES, arch=LENET)
    assert count(m, "fc1") == 235200 - 47040
    assert count(m, "fc2") == 30000 - 6000
    assert count(m, "out") == 1000 - 100


def test_output_layer_rate_differs() -> None:
    k = random_kernels(1)
    a = pruning.prune_magnitude(
        k, ones_mask(LENET), {"fc1": 0.2, "fc2": 0.2, "out": 0.1}, arch=LENET
    )
    b = pruning.prune_magnitude(
        k, ones_mask(LENET), {"fc1": 0.2, "fc2": 0.2, "out": 0.2}, arch=LENET
    )
    assert count(a, "out") == 900 and count(b, "out") == 800
    # The out layer's 0.1 cut is the first half of its 0.2 cut (same ranking).
    assert_shrinks(b, a)
    for layer in ("fc1", "fc2"):
        np.testing.assert_array_equal(a[layer], b[layer])


def test_smallest_magnitudes_are_pruned() -> None:
    k = ranked_kernels()
    m = pruning.prune_magnitude(k, ones_mask(LENET), RATES, arch=LENET)
    for layer in LAYERS:
        n = k[layer].size
        removed = pruning.prune_count(RATES[layer], n)
        expected = np.arange(n) >= removed  # |w| = index + 1: the lowest indices go
        np.testing.assert_array_equal(m[layer].reshape(-1), expected)


def test_absolute_value_not_signed_value() -> None:
    """Large negative weights survive; a `w < t` rule would prune them first."""
    k = {layer: np.full(shape, 0.01, np.float32) for layer, shape in LAYER_SHAPES.items()}
    k["out"][:, :] = np.float32(0.5)
    k["out"][:50, :] = np.float32(-5.0)  # 500 large negative weights
    k["out"][50:60, :] = np.float32(0.001)  # 100 tiny positive weights
    m = pruning.prune_magnitude(
        k, ones_mask(LENET), {"fc1": 0.0, "fc2": 0.0, "out": 0.1}, arch=LENET
    )
    assert m["out"][:50].all()
    assert not m["out"][50:60].any()
    assert m["out"][60:].all()


def test_small_negative_weights_are_pruned() -> None:
    k = {layer: np.full(shape, 3.0, np.float32) for layer, shape in LAYER_SHAPES.items()}
    k["fc2"][0, :20] = np.float32(-1e-4)
    k["fc2"][1, :20] = np.float32(1e-3)
    m = pruning.prune_magnitude(
        k, ones_mask(LENET), {"fc1": 0.0, "fc2": 40 / 30000, "out": 0.0}, arch=LENET
    )
    assert not m["fc2"][0, :20].any() and not m["fc2"][1, :20].any()
    assert count(m, "fc2") == 30000 - 40


# --------------------------------------------------------------------------- survivors only


def test_only_survivors_are_pruned_and_counted() -> None:
    k = ranked_kernels()
    mask = ones_mask(LENET)
    # Pre-prune the 1000 *largest* weights of fc2 and 100 of out: they must stay pruned,
    # and the rate applies to the survivors only.
    mask["fc2"].reshape(-1)[-1000:] = False
    mask["out"].reshape(-1)[-100:] = False
    m = pruning.prune_magnitude(k, mask, RATES, arch=LENET)
    assert count(m, "fc2") == 29000 - pruning.prune_count(0.2, 29000)
    assert count(m, "out") == 900 - 90
    assert not m["fc2"].reshape(-1)[-1000:].any()
    assert not m["out"].reshape(-1)[-100:].any()
    assert_shrinks(m, mask)


def test_pruned_weight_values_are_ignored() -> None:
    k = ranked_kernels()
    mask = ones_mask(LENET)
    mask["out"].reshape(-1)[:10] = False  # the 10 smallest, already pruned
    base = pruning.prune_magnitude(k, mask, RATES, arch=LENET)
    # Whatever the pruned positions hold (huge, zero, NaN), the result is the same.
    for value in (1e9, 0.0, -0.0, np.nan, -np.inf):
        k2 = {layer: a.copy() for layer, a in k.items()}
        k2["out"].reshape(-1)[:10] = value
        again = pruning.prune_magnitude(k2, mask, RATES, arch=LENET)
        for layer in LAYERS:
            np.testing.assert_array_equal(again[layer], base[layer])
    # 99 of the 990 survivors go (0.1 * 990), the next smallest: flat indices 10..108.
    expected = np.arange(1000) >= 10 + 99
    np.testing.assert_array_equal(base["out"].reshape(-1), expected)


def test_inputs_not_mutated_and_rate_zero_keeps() -> None:
    k = random_kernels(2)
    mask = pruning.prune_magnitude(k, ones_mask(LENET), RATES, arch=LENET)
    k_copy = {layer: a.copy() for layer, a in k.items()}
    mask_copy = {layer: a.copy() for layer, a in mask.items()}
    m = pruning.prune_magnitude(k, mask, {"fc1": 0.2, "fc2": 0.0, "out": 0.0}, arch=LENET)
    for layer in LAYERS:
        np.testing.assert_array_equal(k[layer], k_copy[layer])
        np.testing.assert_array_equal(mask[layer], mask_copy[layer])
        assert m[layer] is not mask[layer]
    np.testing.assert_array_equal(m["fc2"], mask["fc2"])
    np.testing.assert_array_equal(m["out"], mask["out"])
    assert count(m, "fc1") < count(mask, "fc1")


# --------------------------------------------------------------------------- ties


def test_ties_lowest_index_first_and_deterministic() -> None:
    k = {layer: np.ones(shape, np.float32) for layer, shape in LAYER_SHAPES.items()}
    # Equal magnitudes of both signs: |w| ties, so flat order decides.
    k["out"].reshape(-1)[1::2] = -1.0
    m1 = pruning.prune_magnitude(k, ones_mask(LENET), RATES, arch=LENET)
    m2 = pruning.prune_magnitude(k, ones_mask(LENET), RATES, arch=LENET)
    for layer in LAYERS:
        n = k[layer].size
        removed = pruning.prune_count(RATES[layer], n)
        np.testing.assert_array_equal(m1[layer].reshape(-1), np.arange(n) >= removed)
        np.testing.assert_array_equal(m1[layer], m2[layer])


def test_ties_among_survivors_follow_flat_index() -> None:
    k = {layer: np.ones(shape, np.float32) for layer, shape in LAYER_SHAPES.items()}
    mask = ones_mask(LENET)
    mask["out"].reshape(-1)[::2] = False  # survivors: odd flat indices (500)
    m = pruning.prune_magnitude(k, mask, NO_PRUNE | {"out": 0.1}, arch=LENET)
    survivors = np.flatnonzero(mask["out"].reshape(-1))
    expected = mask["out"].reshape(-1).copy()
    expected[survivors[:50]] = False
    np.testing.assert_array_equal(m["out"].reshape(-1), expected)


# --------------------------------------------------------------------------- global


def test_global_differs_from_layerwise() -> None:
    """fc2 holds all the small weights: global pruning takes them all from fc2."""
    k = {layer: np.full(shape, 10.0, np.float32) for layer, shape in LAYER_SHAPES.items()}
    k["fc2"][:] = np.float32(0.5)
    k["fc2"][0, 0] = np.float32(-0.25)
    k["fc1"][-1, -1] = np.float32(0.1)  # the single smallest weight, in fc1
    total = sum(a.size for a in k.values())  # 266200
    n_remove = pruning.prune_count(0.1, total)  # 26620
    assert n_remove < 30000 + 1
    g = pruning.prune_magnitude(
        k, ones_mask(LENET), NO_PRUNE, scope="global", global_rate=0.1, arch=LENET
    )
    assert not g["fc1"][-1, -1] and count(g, "fc1") == 235200 - 1
    assert not g["fc2"][0, 0]
    assert count(g, "fc2") == 30000 - (n_remove - 1)
    assert count(g, "out") == 1000
    # Among the tied 0.5s of fc2, the lowest flat indices went first.
    flat = g["fc2"].reshape(-1)
    assert not flat[: n_remove - 1].any() and flat[n_remove - 1 :].all()
    lw = pruning.prune_magnitude(
        k, ones_mask(LENET), {"fc1": 0.1, "fc2": 0.1, "out": 0.1}, arch=LENET
    )
    assert count(lw, "fc1") == 235200 - 23520 and count(lw, "out") == 900


def test_global_removes_globally_smallest_survivors() -> None:
    k = random_kernels(3)
    mask = pruning.prune_magnitude(
        k, ones_mask(LENET), RATES, arch=LENET
    )  # some weights already pruned
    g = pruning.prune_magnitude(k, mask, RATES, scope="global", global_rate=0.3, arch=LENET)
    assert_shrinks(g, mask)
    pool = np.concatenate([np.abs(k[ly][mask[ly]]) for ly in LAYERS])
    removed = np.concatenate([np.abs(k[ly][mask[ly] & ~g[ly]]) for ly in LAYERS])
    kept = np.concatenate([np.abs(k[ly][g[ly]]) for ly in LAYERS])
    assert len(removed) == pruning.prune_count(0.3, len(pool))
    assert removed.max() <= kept.min()


def test_global_exclude() -> None:
    k = {layer: np.full(shape, 10.0, np.float32) for layer, shape in LAYER_SHAPES.items()}
    k["out"][:] = np.float32(0.001)  # would be pruned first if pooled
    k["fc2"][:, :50] = np.float32(0.01)
    g = pruning.prune_magnitude(
        k,
        ones_mask(LENET),
        NO_PRUNE,
        scope="global",
        global_rate=0.01,
        global_exclude=["out"],
        arch=LENET,
    )
    assert count(g, "out") == 1000  # excluded at rate 0: intact
    n_remove = pruning.prune_count(0.01, 235200 + 30000)
    assert count(g, "fc2") == 30000 - n_remove and count(g, "fc1") == 235200
    g2 = pruning.prune_magnitude(
        k,
        ones_mask(LENET),
        NO_PRUNE | {"out": 0.1},
        scope="global",
        global_rate=0.01,
        global_exclude=["out"],
        arch=LENET,
    )
    assert count(g2, "out") == 900  # excluded layers are pruned layer-wise at their rate
    np.testing.assert_array_equal(g2["fc2"], g["fc2"])
    pooled_all = pruning.prune_magnitude(
        k, ones_mask(LENET), NO_PRUNE, scope="global", global_rate=0.01, arch=LENET
    )
    assert count(pooled_all, "out") == 0  # without exclusion the tiny out layer is wiped


def test_global_ties_follow_layer_order() -> None:
    k = {layer: np.ones(shape, np.float32) for layer, shape in LAYER_SHAPES.items()}
    g = pruning.prune_magnitude(
        k,
        ones_mask(LENET),
        NO_PRUNE,
        scope="global",
        global_rate=0.9,
        global_exclude=["fc1"],
        arch=LENET,
    )
    # Pool = fc2 (30000) then out (1000), all tied: the first 27900 in that order go.
    assert count(g, "fc1") == 235200
    assert count(g, "fc2") == 30000 - 27900 and count(g, "out") == 1000
    assert g["fc2"].reshape(-1)[27900:].all()


# --------------------------------------------------------------------------- validation


def test_validation_errors() -> None:
    k = random_kernels(4)
    with pytest.raises(ValueError, match=r"rates\['fc1'\] must be in \[0, 1\)"):
        pruning.prune_magnitude(k, ones_mask(LENET), RATES | {"fc1": 1.0}, arch=LENET)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        pruning.prune_magnitude(k, ones_mask(LENET), RATES | {"out": -0.1}, arch=LENET)
    with pytest.raises(ValueError, match="unknown layers"):
        pruning.prune_magnitude(k, ones_mask(LENET), RATES | {"fc3": 0.2}, arch=LENET)
    with pytest.raises(ValueError, match=r"missing \['out'\]"):
        pruning.prune_magnitude(k, ones_mask(LENET), {"fc1": 0.2, "fc2": 0.2}, arch=LENET)
    bad = dict(k)
    bad["fc2"] = bad["fc2"].T
    with pytest.raises(ValueError, match=r"kernel 'fc2' has shape \(100, 300\)"):
        pruning.prune_magnitude(bad, ones_mask(LENET), RATES, arch=LENET)
    with pytest.raises(ValueError, match="kernels_of"):
        pruning.prune_magnitude(
            {f"{ly}/kernel": a for ly, a in k.items()}, ones_mask(LENET), RATES, arch=LENET
        )
    nan = {ly: a.copy() for ly, a in k.items()}
    nan["fc1"][0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pruning.prune_magnitude(nan, ones_mask(LENET), RATES, arch=LENET)
    with pytest.raises(ValueError, match="global_rate"):
        pruning.prune_magnitude(
            k, ones_mask(LENET), RATES, scope="global", global_rate=1.5, arch=LENET
        )
    with pytest.raises(ValueError, match="unknown layers"):
        pruning.prune_magnitude(
            k, ones_mask(LENET), RATES, scope="global", global_exclude=["conv"], arch=LENET
        )
    with pytest.raises(ValueError, match="give them a rate"):
        pruning.prune_magnitude(
            k, ones_mask(LENET), {}, scope="global", global_exclude=["out"], arch=LENET
        )


def test_kernels_of() -> None:
    k = random_kernels(5)
    weights = {f"{ly}/kernel": a for ly, a in k.items()} | {
        f"{ly}/bias": np.zeros(s[1], np.float32) for ly, s in LAYER_SHAPES.items()
    }
    got = pruning.kernels_of(weights, arch=LENET)
    assert list(got) == list(LAYERS)
    for ly in LAYERS:
        np.testing.assert_array_equal(got[ly], k[ly])


# --------------------------------------------------------------------------- random masks


def test_random_mask_like() -> None:
    k = random_kernels(6)
    mask = ones_mask(LENET)
    for _ in range(3):
        mask = pruning.prune_magnitude(k, mask, RATES, arch=LENET)
    r1 = pruning.random_mask_like(mask, np.random.default_rng(0), arch=LENET)
    r1b = pruning.random_mask_like(mask, np.random.default_rng(0), arch=LENET)
    r2 = pruning.random_mask_like(mask, np.random.default_rng(1), arch=LENET)
    for layer in LAYERS:
        assert count(r1, layer) == count(mask, layer) == count(r2, layer)
        assert r1[layer].dtype == np.bool_ and r1[layer].shape == mask[layer].shape
        np.testing.assert_array_equal(r1[layer], r1b[layer])
        assert not np.array_equal(r1[layer], r2[layer])
        assert not np.array_equal(r1[layer], mask[layer])
    # Drawn over the whole layer, not inside the old mask: ~51% of kept positions of a
    # 51%-dense random fc1 mask fall outside the magnitude mask.
    outside = np.count_nonzero(r1["fc1"] & ~mask["fc1"]) / count(r1, "fc1")
    assert 0.4 < outside < 0.6


# --------------------------------------------------------------------------- properties


def test_cumulative_rate_and_expected_remaining() -> None:
    assert pruning.cumulative_rate(0.2, 0) == 0.0
    assert pruning.cumulative_rate(0.2, 1) == pytest.approx(0.2)
    assert pruning.cumulative_rate(0.2, 3) == pytest.approx(1 - 0.8**3)
    assert pruning.expected_remaining(1000, 0.1, 0) == 1000
    assert pruning.expected_remaining(1000, 0.1, 1) == 900
    assert pruning.expected_remaining(1000, 0.1, 2) == 810
    assert pruning.expected_remaining(10, 0.25, 1) == 7  # 2.5 -> 3 removed
    with pytest.raises(ValueError):
        pruning.cumulative_rate(1.0, 2)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.15, 0.5])
def test_iterative_rounds_match_expected_remaining(rate: float) -> None:
    """k rounds on random weights keep expected_remaining(n, p, k) per layer, and that is
    n(1-p)^k up to the accumulated rounding: |error| <= 0.5 * sum_{i<k} (1-p)^i < 0.5 / p."""
    rng = np.random.default_rng(int(rate * 100))
    mask = ones_mask(LENET)
    rates = dict.fromkeys(LAYERS, rate)
    for k in range(1, 13):
        kernels = {ly: rng.standard_normal(s).astype(np.float32) for ly, s in LAYER_SHAPES.items()}
        new = pruning.prune_magnitude(kernels, mask, rates, arch=LENET)
        assert_shrinks(new, mask)
        mask = new
        bound = 0.5 * sum((1 - rate) ** i for i in range(k)) + 1e-9
        for layer in LAYERS:
            n = mask[layer].size
            assert count(mask, layer) == pruning.expected_remaining(n, rate, k)
            assert abs(count(mask, layer) - n * (1 - rate) ** k) <= bound


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rate=st.floats(0.0, 0.95),
    keep=st.floats(0.0, 1.0),
    tie_levels=st.integers(1, 50),
)
def test_property_one_round(seed: int, rate: float, keep: float, tie_levels: int) -> None:
    """For any mask and weights (with many ties): the right count goes, only survivors go,
    every removed |w| <= every kept |w|, and ties go to the lowest flat index."""
    rng = np.random.default_rng(seed)
    kernels = {
        ly: (rng.integers(-tie_levels, tie_levels + 1, s) / tie_levels).astype(np.float32)
        for ly, s in LAYER_SHAPES.items()
    }
    mask = {ly: rng.random(s) < keep for ly, s in LAYER_SHAPES.items()}
    rates = dict.fromkeys(LAYERS, rate)
    new = pruning.prune_magnitude(kernels, mask, rates, arch=LENET)
    assert_shrinks(new, mask)
    for ly in LAYERS:
        n_surv = count(mask, ly)
        assert count(new, ly) == n_surv - pruning.prune_count(rate, n_surv)
        mags = np.abs(kernels[ly]).reshape(-1)
        removed = np.flatnonzero((mask[ly] & ~new[ly]).reshape(-1))
        kept = np.flatnonzero(new[ly].reshape(-1))
        if len(removed) and len(kept):
            worst_removed = mags[removed].max()
            assert worst_removed <= mags[kept].min()
            # At the threshold magnitude, removed indices all precede kept ones.
            at_t_kept = kept[mags[kept] == worst_removed]
            if len(at_t_kept):
                assert removed[mags[removed] == worst_removed].max() < at_t_kept.min()


# --------------------------------------------------------------------------- other networks

from lottery.core import arch as arch_mod  # noqa: E402

CONV2 = arch_mod.build("conv2", (32, 32, 3))
TYPE_RATES = {"conv": 0.1, "fc": 0.2, "out": 0.1}


def conv_kernels(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in CONV2.kernel_shapes.items()}


def test_conv_layers_prune_by_magnitude_at_their_type_rate() -> None:
    k = conv_kernels(0)
    new = pruning.prune_magnitude(k, ones_mask(CONV2), TYPE_RATES, arch=CONV2)
    for layer in CONV2.layers:
        n = layer.size
        rate = 0.1 if layer.kind == "conv" or layer.name == "out" else 0.2
        assert count(new, layer.name) == n - pruning.prune_count(rate, n), layer.name
        # The removed weights are the smallest |w| of the layer (4-D kernels included).
        kernel = np.abs(k[layer.name])
        assert kernel[~new[layer.name]].max() <= kernel[new[layer.name]].min()
    assert new["conv1"].shape == (3, 3, 3, 64)
    # Resolved per layer, the same rates give the same mask.
    by_name = CONV2.layer_rates(TYPE_RATES)
    again = pruning.prune_magnitude(k, ones_mask(CONV2), by_name, arch=CONV2)
    assert all(np.array_equal(new[n], again[n]) for n in CONV2.names)


def test_conv_iterative_rounds_follow_the_rates() -> None:
    k = conv_kernels(1)
    mask = ones_mask(CONV2)
    rates = TYPE_RATES | {"conv2": 0.3}  # a name overrides its type
    for _ in range(3):
        new = pruning.prune_magnitude(k, mask, rates, arch=CONV2)
        for name in CONV2.names:
            assert not (new[name] & ~mask[name]).any()
        mask = new
    for layer in CONV2.layers:
        rate = CONV2.rate_for(layer.name, rates)
        assert rate is not None
        assert count(mask, layer.name) == pruning.expected_remaining(layer.size, rate, 3)
    assert CONV2.rate_for("conv2", rates) == 0.3 and CONV2.rate_for("conv1", rates) == 0.1


def test_type_rates_on_the_default_network() -> None:
    k = random_kernels(2)
    by_type = pruning.prune_magnitude(k, ones_mask(LENET), {"fc": 0.2, "out": 0.1}, arch=LENET)
    by_name = pruning.prune_magnitude(k, ones_mask(LENET), RATES, arch=LENET)
    assert all(np.array_equal(by_type[n], by_name[n]) for n in LAYERS)


def test_conv_rate_errors_name_the_networks_layers() -> None:
    k = conv_kernels(3)
    with pytest.raises(ValueError, match=r"unknown layers \['fc3'\].*conv1, conv2, fc1, fc2, out"):
        pruning.prune_magnitude(k, ones_mask(CONV2), TYPE_RATES | {"fc3": 0.2}, arch=CONV2)
    with pytest.raises(ValueError, match=r"missing \['conv1', 'conv2'\]"):
        pruning.prune_magnitude(k, ones_mask(CONV2), {"fc": 0.2, "out": 0.1}, arch=CONV2)
    with pytest.raises(ValueError, match=r"unknown layers \['conv'\]"):
        pruning.prune_magnitude(
            random_kernels(3), ones_mask(LENET), RATES | {"conv": 0.1}, arch=LENET
        )
    with pytest.raises(ValueError, match=r"rates\['conv'\] must be in \[0, 1\)"):
        pruning.prune_magnitude(k, ones_mask(CONV2), TYPE_RATES | {"conv": 1.0}, arch=CONV2)
    with pytest.raises(ValueError, match=r"global_exclude names unknown layers \['conv3'\]"):
        pruning.prune_magnitude(
            k, ones_mask(CONV2), TYPE_RATES, "global", 0.2, ["conv3"], arch=CONV2
        )
    with pytest.raises(ValueError, match=r"give them a rate.*missing \['conv1'\]"):
        pruning.prune_magnitude(
            k, ones_mask(CONV2), {"out": 0.1}, "global", 0.2, ["conv1"], arch=CONV2
        )
    with pytest.raises(ValueError, match="mask to prune"):
        pruning.prune_magnitude(k, ones_mask(LENET), TYPE_RATES, arch=CONV2)


def test_conv_global_pruning_pools_every_kernel_shape() -> None:
    k = {n: np.full(s, 2.0, np.float32) for n, s in CONV2.kernel_shapes.items()}
    k["conv1"][:] = 1.0  # the smallest magnitudes: pruned first
    n_conv1 = CONV2.layer("conv1").size
    pooled = CONV2.n_prunable - CONV2.layer("out").size
    rate = 1000 / pooled
    new = pruning.prune_magnitude(
        k, ones_mask(CONV2), {"out": 0.0}, "global", rate, ["out"], arch=CONV2
    )
    assert count(new, "conv1") == n_conv1 - pruning.prune_count(rate, pooled)
    assert all(new[n].all() for n in ("conv2", "fc1", "fc2", "out"))


def test_random_mask_like_any_network() -> None:
    mask = pruning.prune_magnitude(conv_kernels(4), ones_mask(CONV2), TYPE_RATES, arch=CONV2)
    rnd = pruning.random_mask_like(mask, np.random.default_rng(0), arch=CONV2)
    assert {n: count(rnd, n) for n in CONV2.names} == {n: count(mask, n) for n in CONV2.names}
    again = pruning.random_mask_like(mask, np.random.default_rng(0), arch=CONV2)
    assert all(np.array_equal(rnd[n], again[n]) for n in CONV2.names)
    assert not np.array_equal(rnd["conv2"], mask["conv2"])
