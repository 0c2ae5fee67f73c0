"""Pure NumPy pruning: magnitude pruning (layer-wise or global) and random masks.

All functions are pure: they validate their inputs, never mutate them and return new
masks. Counts use round-half-up on exact decimals (`prune_count`), so 0.1 * 25 removes 3,
not 2, whatever the float error of 0.1 * 25.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Literal

import numpy as np

from lottery.core.arch import Architecture, kernel_key
from lottery.core.masks import Mask, validate_mask

Scope = Literal["layerwise", "global"]


def _check_rate(rate: float, what: str) -> Fraction:
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.integer | np.floating):
        raise ValueError(f"{what} must be a number in [0, 1), got {rate!r}")
    r = float(rate)
    if not (math.isfinite(r) and 0.0 <= r < 1.0):
        raise ValueError(f"{what} must be in [0, 1) (the fraction of survivors removed), got {r}")
    # The shortest decimal that round-trips the float: 0.2 -> 1/5 exactly.
    return Fraction(repr(r))


def prune_count(rate: float, n: int) -> int:
    """round-half-up(rate * n): how many of `n` surviving weights one round removes.

    The rate is taken as its shortest decimal representation (0.2 is exactly 1/5), so the
    result does not depend on binary floating-point error.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return math.floor(_check_rate(rate, "rate") * n + Fraction(1, 2))


def cumulative_rate(rate: float, rounds: int) -> float:
    """1 - (1 - rate) ** rounds: the one-shot rate that reaches round `rounds`' density."""
    _check_rate(rate, "rate")
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    return 1.0 - (1.0 - float(rate)) ** rounds


def expected_remaining(n: int, rate: float, rounds: int) -> int:
    """Weights left of `n` after `rounds` rounds, each removing `prune_count(rate, left)`."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    left = int(n)
    for _ in range(rounds):
        left -= prune_count(rate, left)
    return left


def kernels_of(weights: Mapping[str, np.ndarray], *, arch: Architecture) -> dict[str, np.ndarray]:
    """{layer: kernel} from a weights dict keyed `fc1/kernel`, `fc1/bias`, ..."""
    missing = [kernel_key(layer) for layer in arch.names if kernel_key(layer) not in weights]
    if missing:
        raise ValueError(f"weights lack the kernels {missing}")
    return {layer: np.asarray(weights[kernel_key(layer)]) for layer in arch.names}


def _check_kernels(
    kernels: Mapping[str, np.ndarray], mask: Mask, arch: Architecture
) -> dict[str, np.ndarray]:
    layers = arch.names
    if any(kernel_key(layer) in kernels for layer in layers):
        raise ValueError(
            "kernels are keyed by layer name ('fc1', ...), got weights keys ('fc1/kernel', ...): "
            "pass pruning.kernels_of(weights)"
        )
    missing = [layer for layer in layers if layer not in kernels]
    unknown = sorted(str(k) for k in kernels if k not in layers)
    if missing or unknown:
        raise ValueError(
            f"kernels: missing layers {missing}, unknown layers {unknown}; expected {list(layers)}"
        )
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        k = np.asarray(kernels[layer])
        if k.shape != mask[layer].shape:
            raise ValueError(
                f"kernel {layer!r} has shape {k.shape} but its mask has shape "
                f"{mask[layer].shape}; kernels and mask must come from the same network"
            )
        if k.dtype.kind not in "iuf":
            raise ValueError(f"kernel {layer!r} has dtype {k.dtype}; expected floating point")
        if not np.isfinite(k[mask[layer]]).all():
            raise ValueError(
                f"kernel {layer!r} has non-finite surviving weights (NaN/inf): training "
                f"diverged; magnitudes cannot be ranked"
            )
        out[layer] = k
    return out


def _exact_rates(
    rates: Mapping[str, float], arch: Architecture, layers: Sequence[str], why: str
) -> dict[str, Fraction]:
    """The exact rate of each of `layers` (`Architecture.rate_for`: by name, else by type)."""
    unknown = sorted(str(r) for r in rates if r not in arch.names and r not in arch.types)
    if unknown:
        raise ValueError(
            f"rates for unknown layers {unknown}; {arch.describe()} has {arch.rate_keys()}"
        )
    for key, rate in rates.items():
        _check_rate(rate, f"rates[{key!r}]")
    found = {layer: arch.rate_for(layer, rates) for layer in layers}
    missing = [layer for layer, rate in found.items() if rate is None]
    if missing:
        raise ValueError(f"{why}; missing {missing}")
    return {
        layer: _check_rate(r, f"rates[{layer!r}]") for layer, r in found.items() if r is not None
    }


def _prune_layer(kernel: np.ndarray, layer_mask: np.ndarray, rate: Fraction) -> np.ndarray:
    """New mask: the `rate` fraction of survivors with the smallest |w| removed.

    Works on a kernel of any rank (dense (fan_in, fan_out), conv (3, 3, c_in, c_out)).
    Ties: equal |w| -> the lower flat (C-order) index goes first (stable argsort).
    """
    new = layer_mask.copy()
    flat = new.reshape(-1)  # a view of `new`
    survivors = np.flatnonzero(flat)
    n_remove = math.floor(rate * len(survivors) + Fraction(1, 2))
    if n_remove:
        mags = np.abs(kernel.reshape(-1)[survivors])
        order = np.argsort(mags, kind="stable")
        flat[survivors[order[:n_remove]]] = False
    return new


def _prune_pooled(
    k: Mapping[str, np.ndarray], m: Mask, pooled: Sequence[str], rate: Fraction
) -> Mask:
    """Remove the `rate` fraction of the pooled survivors of `pooled` with the smallest |w|."""
    survivors = {layer: np.flatnonzero(m[layer].reshape(-1)) for layer in pooled}
    new = {layer: m[layer].copy() for layer in pooled}
    if not pooled:
        return new
    # Concatenated in layer order, ascending flat index within a layer: a stable argsort
    # orders ties by (layer order, flat index). float64 holds every float32.
    mags = np.concatenate(
        [np.abs(k[ly].reshape(-1)[survivors[ly]]).astype(np.float64) for ly in pooled]
    )
    owner = np.concatenate(
        [np.full(len(survivors[ly]), i, dtype=np.int64) for i, ly in enumerate(pooled)]
    )
    index = np.concatenate([survivors[ly] for ly in pooled])
    n_remove = math.floor(rate * len(mags) + Fraction(1, 2))
    drop = np.argsort(mags, kind="stable")[:n_remove]
    for i, layer in enumerate(pooled):
        new[layer].reshape(-1)[index[drop[owner[drop] == i]]] = False
    return new


def _global_excluded(global_exclude: Sequence[str], arch: Architecture) -> list[str]:
    if isinstance(global_exclude, str):
        raise ValueError(
            f"global_exclude must be a sequence of layer names, got {global_exclude!r}"
        )
    bad = sorted(set(global_exclude) - set(arch.names))
    if bad:
        raise ValueError(
            f"global_exclude names unknown layers {bad}; layers are {list(arch.names)}"
        )
    return [layer for layer in arch.names if layer in global_exclude]


def prune_magnitude(
    kernels: Mapping[str, np.ndarray],
    mask: Mask,
    rates: Mapping[str, float],
    scope: Scope = "layerwise",
    global_rate: float = 0.2,
    global_exclude: Sequence[str] = (),
    *,
    arch: Architecture,
) -> Mask:
    """One round of magnitude pruning; returns the new mask (the inputs are not modified).

    `rates` are keyed by layer name or by layer type (`conv`, `fc`, `out`; a name overrides
    its type, `Architecture.rate_for`).
    layerwise: in each layer remove `prune_count(rate, survivors)` of the surviving
      weights (mask True) with the smallest |w|; every layer needs a rate. Already-pruned
      weights are never counted, ranked or revived, whatever their value.
    global: pool the survivors of every layer not in `global_exclude` and remove
      `prune_count(global_rate, pool size)` with the smallest |w|, ties ordered by (layer
      order, flat index). Layers in `global_exclude` are pruned layer-wise at their rate
      (0 keeps them intact) and need one; rates of pooled layers are not used.
    Ties: among equal |w| the lower flat (C-order) index is pruned first.
    """
    m = validate_mask(mask, source="mask to prune", arch=arch)
    k = _check_kernels(kernels, m, arch)
    if scope == "layerwise":
        why = "layer-wise pruning needs a rate for every layer"
        exact = _exact_rates(rates, arch, arch.names, why)
        return {layer: _prune_layer(k[layer], m[layer], exact[layer]) for layer in arch.names}
    if scope != "global":
        raise ValueError(f"scope must be 'layerwise' or 'global', got {scope!r}")
    excluded = _global_excluded(global_exclude, arch)
    why = (
        "layers excluded from global pruning are pruned layer-wise: give them a rate "
        "(0 keeps them intact)"
    )
    exact = _exact_rates(rates, arch, excluded, why)
    g_rate = _check_rate(global_rate, "global_rate")
    new = _prune_pooled(k, m, [ly for ly in arch.names if ly not in excluded], g_rate)
    for layer in excluded:
        new[layer] = _prune_layer(k[layer], m[layer], exact[layer])
    return {layer: new[layer] for layer in arch.names}


def random_mask_like(mask: Mask, rng: np.random.Generator, *, arch: Architecture) -> Mask:
    """A uniformly random mask with, in every layer, as many kept weights as `mask` has.

    Positions are drawn over the whole layer (pruned positions of `mask` included), from
    `rng` in layer order, so the result is a function of the mask counts and the rng state.
    """
    m = validate_mask(mask, source="mask to match", arch=arch)
    out: Mask = {}
    for layer in arch.names:
        size = m[layer].size
        n_keep = int(np.count_nonzero(m[layer]))
        flat = np.zeros(size, dtype=bool)
        flat[rng.choice(size, size=n_keep, replace=False)] = True
        out[layer] = flat.reshape(m[layer].shape)
    return out
