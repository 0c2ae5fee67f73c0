"""lottery.masks: validation, canonical hashing, density, files and lineage."""

from __future__ import annotations

import hashlib
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lottery.core import masks
from lottery.core.arch import LAYER_SHAPES, LAYERS, LENET, N_PRUNABLE, weight_shapes
from lottery.core.masks import Mask, MaskError, Weights


def random_mask(seed: int, keep: float = 0.5) -> Mask:
    rng = np.random.default_rng(seed)
    return {layer: rng.random(shape) < keep for layer, shape in LAYER_SHAPES.items()}


def random_weights(seed: int) -> Weights:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in weight_shapes().items()}


def reference_mask_hash(mask: Mask) -> str:
    """The encoding documented in masks.mask_hash, written out independently."""
    h = hashlib.sha256()
    for layer in ("fc1", "fc2", "out"):
        a = np.asarray(mask[layer], dtype=bool)
        h.update(layer.encode() + b"\0" + "x".join(map(str, a.shape)).encode() + b"\0")
        bits = a.reshape(-1)
        padded = np.concatenate([bits, np.zeros(-len(bits) % 8, dtype=bool)])
        # Pack by hand: the first element is the most significant bit of each byte.
        weights = 1 << np.arange(7, -1, -1)
        h.update((padded.reshape(-1, 8) * weights).sum(axis=1).astype(np.uint8).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- hashing


def test_mask_hash_matches_documented_encoding() -> None:
    m = random_mask(0)
    assert masks.mask_hash(m, arch=LENET) == reference_mask_hash(m)
    assert masks.mask_hash(masks.ones_mask(LENET), arch=LENET) == reference_mask_hash(
        masks.ones_mask(LENET)
    )


def test_mask_hash_stable_and_format_independent() -> None:
    m = random_mask(1)
    h = masks.mask_hash(m, arch=LENET)
    assert h == masks.mask_hash({k: v.copy() for k, v in m.items()}, arch=LENET)
    assert h == masks.mask_hash(
        {k: m[k] for k in reversed(LAYERS)}, arch=LENET
    )  # dict order irrelevant
    assert h == masks.mask_hash({k: v.astype(np.float32) for k, v in m.items()}, arch=LENET)
    assert h == masks.mask_hash({k: v.astype(np.int8) for k, v in m.items()}, arch=LENET)
    assert h == masks.mask_hash({k: np.asfortranarray(v) for k, v in m.items()}, arch=LENET)


@pytest.mark.parametrize("layer", LAYERS)
def test_mask_hash_sensitive_to_one_bit(layer: str) -> None:
    m = random_mask(2)
    h = masks.mask_hash(m, arch=LENET)
    for pos in (0, m[layer].size // 2, m[layer].size - 1):
        flipped = {k: v.copy() for k, v in m.items()}
        flipped[layer].reshape(-1)[pos] ^= True
        assert masks.mask_hash(flipped, arch=LENET) != h


def test_hash_encoding_sensitive_to_layer_order_and_shape() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((8, 6)) < 0.5
    b = rng.random((4, 5)) < 0.5
    base = masks.hash_bool_arrays([("fc1", a), ("fc2", b)])
    assert masks.hash_bool_arrays([("fc1", a), ("fc2", b)]) == base
    assert masks.hash_bool_arrays([("fc2", b), ("fc1", a)]) != base
    # Same bits, other shape: the packed bytes are identical, the hash is not.
    assert masks.hash_bool_arrays([("fc1", a.reshape(6, 8)), ("fc2", b)]) != base
    assert masks.hash_bool_arrays([("fc1", a.reshape(48)), ("fc2", b)]) != base
    # Same bits under another layer name.
    assert masks.hash_bool_arrays([("fc9", a), ("fc2", b)]) != base


def test_weights_hash() -> None:
    w = random_weights(0)
    h = masks.weights_hash(w, arch=LENET)
    assert h == masks.weights_hash({k: w[k] for k in reversed(list(w))}, arch=LENET)
    assert h == masks.weights_hash({k: v.astype(np.float64) for k, v in w.items()}, arch=LENET)
    changed = {k: v.copy() for k, v in w.items()}
    changed["out/bias"][3] = np.nextafter(changed["out/bias"][3], np.float32(np.inf))
    assert masks.weights_hash(changed, arch=LENET) != h
    ref = hashlib.sha256()
    for key in sorted(w):
        shape = "x".join(map(str, w[key].shape))
        ref.update(key.encode() + b"\0" + shape.encode() + b"\0" + w[key].astype("<f4").tobytes())
    assert h == ref.hexdigest()


# --------------------------------------------------------------------------- validation


def test_validate_mask_accepts_binary_numbers() -> None:
    m = random_mask(4)
    got = masks.validate_mask({k: v.astype(np.uint8) for k, v in m.items()}, arch=LENET)
    assert list(got) == list(LAYERS)
    for k in LAYERS:
        assert got[k].dtype == np.bool_
        np.testing.assert_array_equal(got[k], m[k])
    assert got["fc1"] is not m["fc1"]


def test_validate_mask_missing_and_extra_layers() -> None:
    m = random_mask(5)
    del m["fc2"]
    with pytest.raises(MaskError, match=r"missing layers \['fc2'\]"):
        masks.validate_mask(m, source="m.npz", arch=LENET)
    m = random_mask(5)
    m["fc3"] = np.ones((10, 10), bool)
    with pytest.raises(MaskError, match=r"m.npz: unknown layers \['fc3'\]"):
        masks.validate_mask(m, source="m.npz", arch=LENET)


def test_validate_mask_from_another_architecture() -> None:
    conv = {"conv1": np.ones((3, 3, 1, 32), bool), "conv2": np.ones((3, 3, 32, 64), bool)}
    with pytest.raises(MaskError, match="another architecture") as exc:
        masks.validate_mask(conv, arch=LENET)
    msg = str(exc.value)
    assert "conv1" in msg and "fc1" in msg


def test_validate_mask_wrong_shape() -> None:
    m = random_mask(6)
    m["fc1"] = np.ones((784, 200), bool)
    with pytest.raises(MaskError, match=r"'fc1' has shape \(784, 200\), expected \(784, 300\)"):
        masks.validate_mask(m, arch=LENET)
    m = random_mask(6)
    m["out"] = m["out"].T
    with pytest.raises(MaskError, match="'out' has shape"):
        masks.validate_mask(m, arch=LENET)


@pytest.mark.parametrize("bad", [0.5, 2, -1, np.nan])
def test_validate_mask_non_binary(bad: float) -> None:
    m: dict[str, np.ndarray] = {k: v.astype(np.float64) for k, v in random_mask(7).items()}
    m["fc2"][17, 3] = bad
    with pytest.raises(MaskError, match=r"'fc2' has non-binary values.*flat index 1703"):
        masks.validate_mask(m, arch=LENET)


def test_validate_mask_rejects_strings() -> None:
    m: dict[str, np.ndarray] = dict(masks.ones_mask(LENET))
    m["out"] = np.full((100, 10), "1")
    with pytest.raises(MaskError, match="dtype"):
        masks.validate_mask(m, arch=LENET)


def test_validate_weights() -> None:
    w = random_weights(1)
    got = masks.validate_weights({k: v.astype(np.float64) for k, v in w.items()}, arch=LENET)
    assert all(v.dtype == np.float32 for v in got.values())
    bad = dict(w)
    bad["fc1/kernel"] = bad["fc1/kernel"].copy()
    bad["fc1/kernel"][0, 0] = np.nan
    with pytest.raises(MaskError, match=r"'fc1/kernel' has 1 non-finite"):
        masks.validate_weights(bad, arch=LENET)
    huge = {k: v.astype(np.float64) for k, v in w.items()}
    huge["out/bias"][0] = 1e300  # finite in float64, inf in float32
    with pytest.raises(MaskError, match="non-finite"):
        masks.validate_weights(huge, arch=LENET)
    missing = dict(w)
    del missing["fc2/bias"]
    with pytest.raises(MaskError, match=r"missing arrays \['fc2/bias'\]"):
        masks.validate_weights(missing, arch=LENET)
    wrong = dict(w)
    wrong["fc2/bias"] = np.zeros(99, np.float32)
    with pytest.raises(MaskError, match=r"'fc2/bias' has shape \(99,\)"):
        masks.validate_weights(wrong, arch=LENET)


# --------------------------------------------------------------------------- density


def test_density_values() -> None:
    m = masks.ones_mask(LENET)
    m["fc1"][:392, :] = False  # half of fc1
    m["out"][:, :3] = False  # 700 of 1000 kept
    d = masks.density(m, arch=LENET)
    assert d["fc1"] == 0.5 and d["fc2"] == 1.0 and d["out"] == 0.7
    kept = 392 * 300 + 300 * 100 + 700
    assert d["overall"] == pytest.approx(kept / 266200)
    assert masks.percent_remaining(m, arch=LENET) == pytest.approx(100 * kept / 266200)
    assert masks.kept_counts(m, arch=LENET) == {
        "fc1": 117600,
        "fc2": 30000,
        "out": 700,
        "overall": kept,
    }
    assert masks.density(masks.ones_mask(LENET), arch=LENET)["overall"] == 1.0
    assert N_PRUNABLE == 266200


# --------------------------------------------------------------------------- files


def test_mask_round_trip(tmp_path: Path) -> None:
    m = random_mask(8, keep=0.3)
    path = tmp_path / "sub" / "mask.npz"
    masks.save_mask(path, m, arch=LENET)
    back = masks.load_mask(path, arch=LENET)
    assert list(back) == list(LAYERS)
    for k in LAYERS:
        assert back[k].dtype == np.bool_
        np.testing.assert_array_equal(back[k], m[k])
    assert masks.mask_hash(back, arch=LENET) == masks.mask_hash(m, arch=LENET)
    assert not list(tmp_path.glob("sub/.*.tmp"))  # the atomic write left no temp file


def test_weights_round_trip(tmp_path: Path) -> None:
    w = random_weights(2)
    path = tmp_path / "w.npz"
    masks.save_weights(path, w, arch=LENET)
    back = masks.load_weights(path, arch=LENET)
    assert set(back) == set(weight_shapes())
    for k in w:
        np.testing.assert_array_equal(back[k], w[k])
    assert masks.weights_hash(back, arch=LENET) == masks.weights_hash(w, arch=LENET)


def test_save_refuses_invalid_mask(tmp_path: Path) -> None:
    m: dict[str, np.ndarray] = dict(masks.ones_mask(LENET))
    m["fc1"] = np.full((784, 300), 0.5)
    with pytest.raises(MaskError):
        masks.save_mask(tmp_path / "m.npz", m, arch=LENET)
    assert not (tmp_path / "m.npz").exists()


def test_pickled_npz_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    arrays = {k: v for k, v in masks.ones_mask(LENET).items()}
    obj = np.empty((784, 300), dtype=object)
    obj[...] = True
    np.savez(path, **{**arrays, "fc1": obj}, allow_pickle=True)
    with pytest.raises(MaskError, match=r"evil.npz: array 'fc1' holds pickled.*refused"):
        masks.load_mask(path, arch=LENET)
    w = {**random_weights(0), "out/bias": np.array([{"x": 1}], dtype=object)}
    np.savez(tmp_path / "evil_w.npz", **w, allow_pickle=True)
    with pytest.raises(MaskError, match="refused"):
        masks.load_weights(tmp_path / "evil_w.npz", arch=LENET)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(MaskError, match=r"nope.npz: mask file not found"):
        masks.load_mask(tmp_path / "nope.npz", arch=LENET)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(MaskError, match=r"text.npz: not an .npz"):
        masks.load_mask(text, arch=LENET)
    npy = tmp_path / "plain.npz"
    np.save(tmp_path / "plain.npy", np.ones(3))
    (tmp_path / "plain.npy").rename(npy)
    with pytest.raises(MaskError, match=r"plain.npz: not an .npz"):
        masks.load_mask(npy, arch=LENET)
    good = tmp_path / "good.npz"
    masks.save_mask(good, random_mask(9), arch=LENET)
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MaskError, match=r"truncated.npz"):
        masks.load_mask(truncated, arch=LENET)


def test_corrupted_member_detected(tmp_path: Path) -> None:
    """A bit flipped inside an array's data fails the zip CRC check: named, not loaded."""
    path = tmp_path / "m.npz"
    masks.save_mask(path, masks.ones_mask(LENET), arch=LENET)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("fc2.npy")
    raw = bytearray(path.read_bytes())
    # Local file header: 30 fixed bytes, then the name and the extra field (lengths at 26, 28).
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    data_start = info.header_offset + 30 + name_len + extra_len
    raw[data_start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(MaskError, match=r"m.npz"):
        masks.load_mask(path, arch=LENET)


def test_load_mask_validates_content(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, conv1=np.ones((3, 3), bool))
    with pytest.raises(MaskError, match=r"other.npz: missing layers"):
        masks.load_mask(path, arch=LENET)


# --------------------------------------------------------------------------- other networks

from lottery.core import arch as arch_mod  # noqa: E402

CONV2 = arch_mod.build("conv2", (32, 32, 3))
SMALL_MLP = arch_mod.build("mlp", (28, 28, 1), [20])


def random_mask_of(a: arch_mod.Architecture, seed: int, keep: float = 0.5) -> Mask:
    rng = np.random.default_rng(seed)
    return {name: rng.random(shape) < keep for name, shape in a.kernel_shapes.items()}


def test_conv_masks_validate_hash_and_count() -> None:
    m = random_mask_of(CONV2, 1)
    valid = masks.validate_mask(m, arch=CONV2)
    assert list(valid) == ["conv1", "conv2", "fc1", "fc2", "out"]
    assert valid["conv1"].shape == (3, 3, 3, 64) and valid["conv1"].dtype == np.bool_
    kept = masks.kept_counts(m, arch=CONV2)
    assert kept["overall"] == sum(int(v.sum()) for v in m.values())
    d = masks.density(m, arch=CONV2)
    assert d["overall"] == kept["overall"] / CONV2.n_prunable
    assert d["conv2"] == float(m["conv2"].mean())
    assert masks.percent_remaining(masks.ones_mask(CONV2), arch=CONV2) == 100.0
    # The hash is the documented encoding over the network's layers in forward order.
    h = hashlib.sha256()
    for name in CONV2.names:
        a = m[name]
        h.update(name.encode() + b"\0" + "x".join(map(str, a.shape)).encode() + b"\0")
        h.update(np.packbits(a.reshape(-1)).tobytes())
    assert masks.mask_hash(m, arch=CONV2) == h.hexdigest()
    flipped = {k: v.copy() for k, v in m.items()}
    flipped["conv1"][2, 1, 0, 5] ^= True
    assert masks.mask_hash(flipped, arch=CONV2) != masks.mask_hash(m, arch=CONV2)


def test_a_mask_of_another_network_is_refused_naming_it() -> None:
    with pytest.raises(MaskError, match=r"missing layers \['conv1', 'conv2'\].*conv2 on 32x32x3"):
        masks.validate_mask(random_mask(0), arch=CONV2)
    with pytest.raises(MaskError, match=r"unknown layers \['conv1', 'conv2'\].*mlp 784-300-100"):
        masks.validate_mask(random_mask_of(CONV2, 0), arch=LENET)
    other = random_mask_of(arch_mod.build("conv2", (28, 28, 1)), 0)
    with pytest.raises(
        MaskError, match=r"'conv1' has shape \(3, 3, 1, 64\), expected \(3, 3, 3, 64\)"
    ):
        masks.validate_mask(other, arch=CONV2)
    wrong_width = {"fc1": np.ones((784, 300), bool), "out": np.ones((20, 10), bool)}
    with pytest.raises(MaskError, match=r"'fc1' has shape \(784, 300\).*mlp 784-20-10 on 28x28x1"):
        masks.validate_mask(wrong_width, arch=SMALL_MLP)


def test_weights_and_files_of_any_network(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = {k: rng.standard_normal(s).astype(np.float32) for k, s in CONV2.weight_shapes().items()}
    masks.save_weights(tmp_path / "w.npz", w, arch=CONV2)
    back = masks.load_weights(tmp_path / "w.npz", arch=CONV2)
    assert masks.weights_hash(back, arch=CONV2) == masks.weights_hash(w, arch=CONV2)
    with pytest.raises(
        MaskError, match=r"unknown arrays \['conv1/bias'.*mlp 784-300-100-10 on 28x28x1 expects"
    ):
        masks.load_weights(tmp_path / "w.npz", arch=LENET)  # read as LeNet-300-100
    m = random_mask_of(SMALL_MLP, 4)
    masks.save_mask(tmp_path / "m.npz", m, arch=SMALL_MLP)
    got = masks.load_mask(tmp_path / "m.npz", arch=SMALL_MLP)
    assert all(np.array_equal(got[k], m[k]) for k in SMALL_MLP.names)
    with pytest.raises(MaskError, match=r"missing layers \['fc2'\]; mlp 784-300-100-10"):
        masks.load_mask(tmp_path / "m.npz", arch=LENET)


def test_lenet_default_is_the_explicit_architecture() -> None:
    m = random_mask(9)
    assert (
        masks.mask_hash(m, arch=LENET)
        == masks.mask_hash(m, arch=arch_mod.LENET)
        == reference_mask_hash(m)
    )
    assert masks.density(m, arch=LENET) == masks.density(m, arch=arch_mod.LENET)
