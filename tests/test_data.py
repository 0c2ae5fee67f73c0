"""lottery.data: the committed MNIST files, strict IDX parsing, checksums, the split."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lottery import data
from lottery.data import DataError, Split

MNIST_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"

MnistArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def readme_label_counts() -> dict[str, list[int]]:
    """The label counts documented in data/mnist/README.md (train and test)."""
    text = " ".join((MNIST_DIR / "README.md").read_text().split())
    counts = {}
    for part in ("train", "test"):
        match = re.search(rf"{part}:((?:\s*\d+){{10}})", text)
        assert match is not None, f"README.md has no '{part}:' label counts"
        counts[part] = [int(v) for v in match.group(1).split()]
    return counts


@pytest.fixture(scope="module")
def mnist() -> MnistArrays:
    return data.load_mnist(MNIST_DIR)


def write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> Path:
    """Write a gzip IDX file: big-endian magic, uint32 dims, raw bytes."""
    header = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as fh:
        fh.write(header + payload)
    return path


def copy_mnist(tmp_path: Path) -> Path:
    dst = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, dst)
    return dst


def row_counter(x: np.ndarray) -> Counter[bytes]:
    return Counter(row.tobytes() for row in x)


# --------------------------------------------------------------------------- real files


def test_checksums_file_lists_every_mnist_file() -> None:
    sums = data.read_checksums(MNIST_DIR / "SHA256SUMS")
    assert set(data.MNIST_FILES.values()) <= set(sums)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in sums.values())


def test_real_files_verify() -> None:
    found = data.verify_files(MNIST_DIR)
    assert set(found) == set(data.MNIST_FILES.values())
    for name, digest in found.items():
        assert digest == hashlib.sha256((MNIST_DIR / name).read_bytes()).hexdigest()


def test_real_files_load(mnist: MnistArrays) -> None:
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert {a.dtype for a in mnist} == {np.dtype(np.uint8)}
    expected = readme_label_counts()
    assert data.class_counts(y_train) == expected["train"]
    assert data.class_counts(y_test) == expected["test"]
    # Images are real digits, not blank: some ink in every image, full pixel range used.
    assert x_train.max() == 255 and (x_train.reshape(60000, -1).max(axis=1) > 0).all()


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("v", [5000, 10000])
def test_split_sizes_partition_and_test_untouched(
    mnist: MnistArrays, stratified: bool, v: int
) -> None:
    x_train, y_train, x_test, y_test = mnist
    s = data.split_validation(x_train, y_train, x_test, y_test, v, stratified, seed=0)
    assert s.sizes() == {"train": 60000 - v, "val": v, "test": 10000}
    assert s.x_train.shape == (60000 - v, 784) and s.x_val.shape == (v, 784)
    # Train and val are a partition of the original training set (as a multiset of
    # (image, label) rows), so nothing is lost, duplicated or shared beyond what MNIST has.
    joined = np.concatenate([s.x_train, s.y_train[:, None]], axis=1)
    held = np.concatenate([s.x_val, s.y_val[:, None]], axis=1)
    original = np.concatenate([x_train.reshape(60000, -1), y_train[:, None]], axis=1)
    assert row_counter(joined) + row_counter(held) == row_counter(original)
    # By index: disjoint, covering, and val rows are the original rows.
    idx = data.validation_indices(y_train, v, stratified, seed=0)
    assert len(np.unique(idx)) == v
    keep = np.setdiff1d(np.arange(60000), idx)
    np.testing.assert_array_equal(s.x_val, x_train.reshape(60000, -1)[idx])
    np.testing.assert_array_equal(s.y_train, y_train[keep])
    np.testing.assert_array_equal(s.x_train, x_train.reshape(60000, -1)[keep])
    np.testing.assert_array_equal(s.x_test, x_test.reshape(10000, -1))
    np.testing.assert_array_equal(s.y_test, y_test)


@pytest.mark.parametrize("v", [5000, 10000, 1234, 7])
def test_stratified_proportions(mnist: MnistArrays, v: int) -> None:
    _, y_train, _, _ = mnist
    counts = data.class_counts(y_train)
    idx = data.validation_indices(y_train, v, stratified=True, seed=3)
    got = data.class_counts(y_train[idx])
    assert sum(got) == v
    for c, g in zip(counts, got, strict=True):
        assert abs(g - v * c / 60000) < 1


def test_split_deterministic_per_seed(mnist: MnistArrays) -> None:
    _, y_train, _, _ = mnist
    for stratified in (True, False):
        a = data.validation_indices(y_train, 5000, stratified, seed=1)
        b = data.validation_indices(y_train, 5000, stratified, seed=1)
        c = data.validation_indices(y_train, 5000, stratified, seed=2)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert len(np.intersect1d(a, c)) < 2500  # a different seed draws a different set


def test_split_arrays_deterministic(mnist: MnistArrays) -> None:
    a = data.split_validation(*mnist, validation_size=1000, stratified=True, seed=5)
    b = data.split_validation(*mnist, validation_size=1000, stratified=True, seed=5)
    for key, arr in a.arrays().items():
        np.testing.assert_array_equal(arr, b.arrays()[key])


@pytest.mark.parametrize("v", [0, -1, 60000, 60001])
def test_validation_size_out_of_range(mnist: MnistArrays, v: int) -> None:
    with pytest.raises(DataError, match="validation_size"):
        data.split_validation(*mnist, validation_size=v, stratified=True, seed=0)


def test_split_rejects_bad_arrays() -> None:
    x = np.zeros((4, 784), np.uint8)
    y = np.zeros(4, np.uint8)
    with pytest.raises(DataError, match="uint8"):
        Split(x.astype(np.float32), y, x, y, x, y)
    with pytest.raises(DataError, match="shapes"):
        Split(x[:, :700], y, x, y, x, y)
    with pytest.raises(DataError, match="label 10"):
        Split(x, y, x, y + 10, x, y)


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    y = (np.arange(300) % 10).astype(np.uint8)
    s = data.split_validation(x, y, x[:50], y[:50], 30, stratified=True, seed=0)
    data.save_split(tmp_path, s, {"note": "tiny"})
    manifest = data.io.read_json(tmp_path / "manifest.json")
    assert manifest["note"] == "tiny"
    assert manifest["sizes"] == {"train": 270, "val": 30, "test": 50}
    assert manifest["class_counts"]["val"] == [3] * 10
    assert (
        manifest["split_sha256"]
        == hashlib.sha256((tmp_path / "split.npz").read_bytes()).hexdigest()
    )
    back = data.load_split(tmp_path)
    for key, arr in s.arrays().items():
        got = back.arrays()[key]
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arr)


def test_load_split_detects_tampering_and_missing(tmp_path: Path) -> None:
    x = np.zeros((20, 784), np.uint8)
    y = (np.arange(20) % 10).astype(np.uint8)
    s = data.split_validation(x, y, x, y, 10, stratified=True, seed=0)
    data.save_split(tmp_path, s, {})
    npz = tmp_path / "split.npz"
    raw = bytearray(npz.read_bytes())
    raw[-10] ^= 0xFF
    npz.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"dvc repro prepare") as exc:
        data.load_split(tmp_path)
    assert "split.npz" in str(exc.value)
    npz.unlink()
    with pytest.raises(DataError, match=r"not found.*dvc repro prepare"):
        data.load_split(tmp_path)


def test_prepare_writes_manifest(tmp_path: Path) -> None:
    manifest = data.prepare(MNIST_DIR, tmp_path / "out", 5000, stratified=True, seed=0)
    assert manifest["sizes"] == {"train": 55000, "val": 5000, "test": 10000}
    sums = data.read_checksums(MNIST_DIR / "SHA256SUMS")
    for name in data.MNIST_FILES.values():
        assert manifest["source"][name]["sha256"] == sums[name]
    assert manifest["seed"] == 0 and manifest["stratified"] is True
    assert data.load_split(tmp_path / "out").sizes() == manifest["sizes"]


# --------------------------------------------------------------------------- bad files


def test_flipped_byte_fails_checksum(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    name = data.MNIST_FILES["train_labels"]
    path = mnist_dir / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    expected = data.read_checksums(MNIST_DIR / "SHA256SUMS")[name]
    with pytest.raises(DataError) as exc:
        data.verify_files(mnist_dir)
    assert name in str(exc.value) and expected in str(exc.value)
    assert "git checkout" in str(exc.value)
    with pytest.raises(DataError, match=name):
        data.load_mnist(mnist_dir)


def test_missing_file(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    name = data.MNIST_FILES["test_labels"]
    (mnist_dir / name).unlink()
    with pytest.raises(DataError, match=rf"{name}: file not found"):
        data.verify_files(mnist_dir)
    with pytest.raises(DataError, match=rf"{name}: file not found"):
        data.load_mnist(mnist_dir, verify=False)


def test_missing_or_malformed_checksums(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    sums = mnist_dir / "SHA256SUMS"
    lines = sums.read_text().splitlines()
    sums.write_text("\n".join(ln for ln in lines if "t10k-labels" not in ln) + "\n")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: not listed"):
        data.verify_files(mnist_dir)
    sums.write_text("not a checksum line\n")
    with pytest.raises(DataError, match="malformed"):
        data.read_checksums(sums)
    sums.unlink()
    with pytest.raises(DataError, match="SHA256SUMS: checksum file not found"):
        data.verify_files(mnist_dir)


def test_truncated_gzip(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    path = mnist_dir / data.MNIST_FILES["train_labels"]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte.gz: the gzip stream is truncated"
    ):
        data.load_mnist(mnist_dir, verify=False)


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="not a valid gzip"):
        data.read_idx(path, "labels")


def test_synthetic_valid_files(tmp_path: Path) -> None:
    pixels = bytes(range(256)) * (3 * 784 // 256) + bytes(3 * 784 % 256)
    images = data.read_idx(write_idx(tmp_path / "i.gz", 0x803, (3, 28, 28), pixels), "images")
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert images.tobytes() == pixels
    labels = data.read_idx(write_idx(tmp_path / "l.gz", 0x801, (4,), bytes([0, 9, 3, 3])), "labels")
    assert labels.tolist() == [0, 9, 3, 3] and labels.dtype == np.uint8


def test_wrong_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l.gz", 0x802, (2,), bytes([1, 2]))
    with pytest.raises(
        DataError, match=r"l.gz: IDX magic number is 0x00000802, expected 0x00000801"
    ):
        data.read_idx(path, "labels")
    # An images file where labels are expected is named as such.
    path = write_idx(tmp_path / "i.gz", 0x803, (1, 28, 28), bytes(784))
    with pytest.raises(DataError, match="swapped"):
        data.read_idx(path, "labels")


def test_wrong_image_shape(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "i.gz", 0x803, (2, 28, 27), bytes(2 * 28 * 27))
    with pytest.raises(DataError, match=r"i.gz: images are 28x27, expected 28x28"):
        data.read_idx(path, "images")


@pytest.mark.parametrize("extra", [-1, 1])
def test_data_length_mismatch(tmp_path: Path, extra: int) -> None:
    path = write_idx(tmp_path / "i.gz", 0x803, (2, 28, 28), bytes(2 * 784 + extra))
    with pytest.raises(DataError, match=r"promises 1568 data bytes"):
        data.read_idx(path, "images")


def test_short_header(tmp_path: Path) -> None:
    path = tmp_path / "i.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">I", 0x803) + b"\0\0")
    with pytest.raises(DataError, match="too short"):
        data.read_idx(path, "images")


def test_label_out_of_range(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l.gz", 0x801, (3,), bytes([1, 10, 2]))
    with pytest.raises(DataError, match=r"l.gz: label 10 at index 1 is outside 0..9"):
        data.read_idx(path, "labels")


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    files = data.MNIST_FILES
    write_idx(d / files["train_images"], 0x803, (3, 28, 28), bytes(3 * 784))
    write_idx(d / files["train_labels"], 0x801, (2,), bytes([1, 2]))
    write_idx(d / files["test_images"], 0x803, (1, 28, 28), bytes(784))
    write_idx(d / files["test_labels"], 0x801, (1,), bytes([1]))
    with pytest.raises(DataError, match=r"2 labels for 3 images"):
        data.load_mnist(d, verify=False)
