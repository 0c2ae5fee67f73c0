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

from lottery.core import datasets, io
from lottery.core.datasets import DataError
from lottery.data.checksums import read_checksums
from lottery.data.cifar import (
    CIFAR_ARCHIVE,
    CIFAR_ARCHIVE_MD5,
    CIFAR_BATCH_DIR,
    CIFAR_RECORD,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    CIFAR_URL,
    cifar_files,
    load_cifar10,
    parse_cifar_batch,
)
from lottery.data.idx import MNIST_FILES, load_mnist, read_idx, verify_idx
from lottery.data.prepare import load_dataset, prepare
from lottery.data.split import (
    Split,
    class_counts,
    load_split,
    save_split,
    split_validation,
    validation_indices,
)
from tests.helpers import tiny_cifar, write_cifar_dir, write_idx

MNIST_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"

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
    return load_mnist(MNIST_DIR)


def copy_mnist(tmp_path: Path) -> Path:
    dst = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, dst)
    return dst


def row_counter(x: np.ndarray) -> Counter[bytes]:
    return Counter(row.tobytes() for row in x)


# --------------------------------------------------------------------------- real files


def test_checksums_file_lists_every_mnist_file() -> None:
    sums = read_checksums(MNIST_DIR / "SHA256SUMS")
    assert set(MNIST_FILES.values()) <= set(sums)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in sums.values())


def test_real_files_verify() -> None:
    found = verify_idx(MNIST_DIR)
    assert set(found) == set(MNIST_FILES.values())
    for name, digest in found.items():
        assert digest == hashlib.sha256((MNIST_DIR / name).read_bytes()).hexdigest()


def test_real_files_load(mnist: MnistArrays) -> None:
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert {a.dtype for a in mnist} == {np.dtype(np.uint8)}
    expected = readme_label_counts()
    assert class_counts(y_train) == expected["train"]
    assert class_counts(y_test) == expected["test"]
    # Images are real digits, not blank: some ink in every image, full pixel range used.
    assert x_train.max() == 255 and (x_train.reshape(60000, -1).max(axis=1) > 0).all()


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("v", [5000, 10000])
def test_split_sizes_partition_and_test_untouched(
    mnist: MnistArrays, stratified: bool, v: int
) -> None:
    x_train, y_train, x_test, y_test = mnist
    s = split_validation(x_train, y_train, x_test, y_test, v, stratified, seed=0)
    assert s.sizes() == {"train": 60000 - v, "val": v, "test": 10000}
    assert s.x_train.shape == (60000 - v, 784) and s.x_val.shape == (v, 784)
    # Train and val are a partition of the original training set (as a multiset of
    # (image, label) rows), so nothing is lost, duplicated or shared beyond what MNIST has.
    joined = np.concatenate([s.x_train, s.y_train[:, None]], axis=1)
    held = np.concatenate([s.x_val, s.y_val[:, None]], axis=1)
    original = np.concatenate([x_train.reshape(60000, -1), y_train[:, None]], axis=1)
    assert row_counter(joined) + row_counter(held) == row_counter(original)
    # By index: disjoint, covering, and val rows are the original rows.
    idx = validation_indices(y_train, v, stratified, seed=0)
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
    counts = class_counts(y_train)
    idx = validation_indices(y_train, v, stratified=True, seed=3)
    got = class_counts(y_train[idx])
    assert sum(got) == v
    for c, g in zip(counts, got, strict=True):
        assert abs(g - v * c / 60000) < 1


def test_split_deterministic_per_seed(mnist: MnistArrays) -> None:
    _, y_train, _, _ = mnist
    for stratified in (True, False):
        a = validation_indices(y_train, 5000, stratified, seed=1)
        b = validation_indices(y_train, 5000, stratified, seed=1)
        c = validation_indices(y_train, 5000, stratified, seed=2)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert len(np.intersect1d(a, c)) < 2500  # a different seed draws a different set


def test_split_arrays_deterministic(mnist: MnistArrays) -> None:
    a = split_validation(*mnist, validation_size=1000, stratified=True, seed=5)
    b = split_validation(*mnist, validation_size=1000, stratified=True, seed=5)
    for key, arr in a.arrays().items():
        np.testing.assert_array_equal(arr, b.arrays()[key])


@pytest.mark.parametrize("v", [0, -1, 60000, 60001])
def test_validation_size_out_of_range(mnist: MnistArrays, v: int) -> None:
    with pytest.raises(DataError, match="validation_size"):
        split_validation(*mnist, validation_size=v, stratified=True, seed=0)


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
    s = split_validation(x, y, x[:50], y[:50], 30, stratified=True, seed=0)
    save_split(tmp_path, s, {"note": "tiny"})
    manifest = io.read_json(tmp_path / "manifest.json")
    assert manifest["note"] == "tiny"
    assert manifest["sizes"] == {"train": 270, "val": 30, "test": 50}
    assert manifest["class_counts"]["val"] == [3] * 10
    assert (
        manifest["split_sha256"]
        == hashlib.sha256((tmp_path / "split.npz").read_bytes()).hexdigest()
    )
    back = load_split(tmp_path)
    for key, arr in s.arrays().items():
        got = back.arrays()[key]
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arr)


def test_load_split_detects_tampering_and_missing(tmp_path: Path) -> None:
    x = np.zeros((20, 784), np.uint8)
    y = (np.arange(20) % 10).astype(np.uint8)
    s = split_validation(x, y, x, y, 10, stratified=True, seed=0)
    save_split(tmp_path, s, {})
    npz = tmp_path / "split.npz"
    raw = bytearray(npz.read_bytes())
    raw[-10] ^= 0xFF
    npz.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"dvc repro prepare") as exc:
        load_split(tmp_path)
    assert "split.npz" in str(exc.value)
    npz.unlink()
    with pytest.raises(DataError, match=r"not found.*dvc repro prepare"):
        load_split(tmp_path)


def test_prepare_writes_manifest(tmp_path: Path) -> None:
    manifest = prepare(MNIST_DIR, tmp_path / "out", 5000, stratified=True, seed=0)
    assert manifest["sizes"] == {"train": 55000, "val": 5000, "test": 10000}
    sums = read_checksums(MNIST_DIR / "SHA256SUMS")
    for name in MNIST_FILES.values():
        assert manifest["source"][name]["sha256"] == sums[name]
    assert manifest["seed"] == 0 and manifest["stratified"] is True
    assert load_split(tmp_path / "out").sizes() == manifest["sizes"]


# --------------------------------------------------------------------------- bad files


def test_flipped_byte_fails_checksum(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    name = MNIST_FILES["train_labels"]
    path = mnist_dir / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    expected = read_checksums(MNIST_DIR / "SHA256SUMS")[name]
    with pytest.raises(DataError) as exc:
        verify_idx(mnist_dir)
    assert name in str(exc.value) and expected in str(exc.value)
    assert "git checkout" in str(exc.value)
    with pytest.raises(DataError, match=name):
        load_mnist(mnist_dir)


def test_missing_file(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    name = MNIST_FILES["test_labels"]
    (mnist_dir / name).unlink()
    with pytest.raises(DataError, match=rf"{name}: file not found"):
        verify_idx(mnist_dir)
    with pytest.raises(DataError, match=rf"{name}: file not found"):
        load_mnist(mnist_dir, verify=False)


def test_missing_or_malformed_checksums(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    sums = mnist_dir / "SHA256SUMS"
    lines = sums.read_text().splitlines()
    sums.write_text("\n".join(ln for ln in lines if "t10k-labels" not in ln) + "\n")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: not listed"):
        verify_idx(mnist_dir)
    sums.write_text("not a checksum line\n")
    with pytest.raises(DataError, match="malformed"):
        read_checksums(sums)
    sums.unlink()
    with pytest.raises(DataError, match="SHA256SUMS: checksum file not found"):
        verify_idx(mnist_dir)


def test_truncated_gzip(tmp_path: Path) -> None:
    mnist_dir = copy_mnist(tmp_path)
    path = mnist_dir / MNIST_FILES["train_labels"]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte.gz: the gzip stream is truncated"
    ):
        load_mnist(mnist_dir, verify=False)


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="not a valid gzip"):
        read_idx(path, "labels")


def test_synthetic_valid_files(tmp_path: Path) -> None:
    pixels = bytes(range(256)) * (3 * 784 // 256) + bytes(3 * 784 % 256)
    images = read_idx(write_idx(tmp_path / "i.gz", 0x803, (3, 28, 28), pixels), "images")
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert images.tobytes() == pixels
    labels = read_idx(write_idx(tmp_path / "l.gz", 0x801, (4,), bytes([0, 9, 3, 3])), "labels")
    assert labels.tolist() == [0, 9, 3, 3] and labels.dtype == np.uint8


def test_wrong_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l.gz", 0x802, (2,), bytes([1, 2]))
    with pytest.raises(
        DataError, match=r"l.gz: IDX magic number is 0x00000802, expected 0x00000801"
    ):
        read_idx(path, "labels")
    # An images file where labels are expected is named as such.
    path = write_idx(tmp_path / "i.gz", 0x803, (1, 28, 28), bytes(784))
    with pytest.raises(DataError, match="swapped"):
        read_idx(path, "labels")


def test_wrong_image_shape(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "i.gz", 0x803, (2, 28, 27), bytes(2 * 28 * 27))
    with pytest.raises(DataError, match=r"i.gz: images are 28x27, expected 28x28"):
        read_idx(path, "images")


@pytest.mark.parametrize("extra", [-1, 1])
def test_data_length_mismatch(tmp_path: Path, extra: int) -> None:
    path = write_idx(tmp_path / "i.gz", 0x803, (2, 28, 28), bytes(2 * 784 + extra))
    with pytest.raises(DataError, match=r"promises 1568 data bytes"):
        read_idx(path, "images")


def test_short_header(tmp_path: Path) -> None:
    path = tmp_path / "i.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">I", 0x803) + b"\0\0")
    with pytest.raises(DataError, match="too short"):
        read_idx(path, "images")


def test_label_out_of_range(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l.gz", 0x801, (3,), bytes([1, 10, 2]))
    with pytest.raises(DataError, match=r"l.gz: label 10 at index 1 is outside 0..9"):
        read_idx(path, "labels")


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    files = MNIST_FILES
    write_idx(d / files["train_images"], 0x803, (3, 28, 28), bytes(3 * 784))
    write_idx(d / files["train_labels"], 0x801, (2,), bytes([1, 2]))
    write_idx(d / files["test_images"], 0x803, (1, 28, 28), bytes(784))
    write_idx(d / files["test_labels"], 0x801, (1,), bytes([1]))
    with pytest.raises(DataError, match=r"2 labels for 3 images"):
        load_mnist(d, verify=False)


# --------------------------------------------------------------------------- the datasets

FASHION_DIR = Path(__file__).resolve().parents[2] / "data" / "fashion-mnist"


def test_dataset_registry_matches_the_committed_directories() -> None:
    assert list(datasets.DATASETS) == ["mnist", "fashion-mnist", "cifar10"]
    root = Path(__file__).resolve().parents[2]
    for name in ("mnist", "fashion-mnist"):  # committed; cifar10 is placed by the user
        info = datasets.dataset_info(name)
        assert info.directory == Path("data") / name and (root / info.directory).is_dir()
        assert info.image_shape == (28, 28, 1) and (info.n_train, info.n_test) == (60000, 10000)
    assert datasets.dataset_info("cifar10").image_shape == (32, 32, 3)
    with pytest.raises(DataError, match=r"unknown dataset 'svhn'.*mnist, fashion-mnist, cifar10"):
        datasets.dataset_info("svhn")


def test_fashion_mnist_real_files_verify_and_load() -> None:
    found = verify_idx(FASHION_DIR)
    sums = read_checksums(FASHION_DIR / "SHA256SUMS")
    assert found == {name: sums[name] for name in MNIST_FILES.values()}
    for name, digest in found.items():
        assert digest == hashlib.sha256((FASHION_DIR / name).read_bytes()).hexdigest()
    (x_train, y_train, x_test, y_test), source = load_dataset("fashion-mnist", FASHION_DIR)
    assert source == {name: {"sha256": digest} for name, digest in found.items()}
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    # data/fashion-mnist/README.md: 6,000 per class in train, 1,000 per class in test.
    assert class_counts(y_train) == [6000] * 10
    assert class_counts(y_test) == [1000] * 10
    assert x_train.max() == 255 and (x_train.reshape(60000, -1).max(axis=1) > 0).all()
    mnist_x = read_idx(MNIST_DIR / MNIST_FILES["test_images"], "images")
    assert not np.array_equal(mnist_x, x_test)  # a different dataset, not a copy of MNIST


def test_fashion_mnist_tampered_file_names_its_directory(tmp_path: Path) -> None:
    d = tmp_path / "fashion-mnist"
    shutil.copytree(FASHION_DIR, d)
    path = d / MNIST_FILES["test_labels"]
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"t10k-labels.*git checkout -- {d}"):
        prepare(d, tmp_path / "out", 5000, True, 0, dataset="fashion-mnist")
    assert not (tmp_path / "out").exists()  # nothing written


def test_prepare_fashion_mnist_manifest(tmp_path: Path) -> None:
    m = prepare(FASHION_DIR, tmp_path, 5000, stratified=True, seed=0, dataset="fashion-mnist")
    assert m["dataset"] == "fashion-mnist" and m["image_shape"] == [28, 28, 1]
    sums = read_checksums(FASHION_DIR / "SHA256SUMS")
    assert m["source"] == {name: {"sha256": sums[name]} for name in MNIST_FILES.values()}
    assert m["class_counts"]["val"] == [500] * 10
    split = load_split(tmp_path)
    assert split.image_shape == (28, 28, 1) and split.images("val").shape == (5000, 28, 28, 1)


def test_mnist_split_is_unchanged_by_the_dataset_choice(tmp_path: Path) -> None:
    """The default prepared split is byte for byte what it was before datasets existed."""
    m = prepare(MNIST_DIR, tmp_path / "a", 5000, stratified=True, seed=0)
    assert m["dataset"] == "mnist" and m["image_shape"] == [28, 28, 1]
    assert m["split_sha256"] == "efbe56ed352585cdf3cfd93199069ec159163d4da0aa0ecbd05949e960a2b767"
    again = prepare(MNIST_DIR, tmp_path / "b", 5000, True, 0, dataset="mnist")
    assert (tmp_path / "a" / "split.npz").read_bytes() == (
        tmp_path / "b" / "split.npz"
    ).read_bytes()
    assert again == m


def test_load_dataset_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"directory not found.*git checkout -- data/fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    with pytest.raises(DataError, match="unknown dataset"):
        prepare(MNIST_DIR, tmp_path / "out", 5000, True, 0, dataset="MNIST")


# --------------------------------------------------------------------------- image shapes


def test_split_checks_rows_against_the_image_shape() -> None:
    x = np.zeros((4, 3072), np.uint8)
    y = np.zeros(4, np.uint8)
    assert Split(x, y, x, y, x, y, image_shape=(32, 32, 3)).images("test").shape == (4, 32, 32, 3)
    with pytest.raises(DataError, match=r"expected \(N, 784\) and \(N,\) for 28x28x1 images"):
        Split(x, y, x, y, x, y)
    with pytest.raises(DataError, match=r"expected \(N, 3072\).*32x32x3"):
        Split(x[:, :784], y, x, y, x, y, image_shape=(32, 32, 3))


def test_split_validation_takes_the_shape_from_the_images() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(40) % 10).astype(np.uint8)
    s = split_validation(x, y, x[:5], y[:5], 10, stratified=True, seed=0)
    assert s.image_shape == (32, 32, 3) and s.x_train.shape == (30, 3072)
    # Rows are HWC-flattened: reshaping gives the images back.
    np.testing.assert_array_equal(s.images("test"), x[:5])
    flat = split_validation(
        x.reshape(40, -1), y, x[:5].reshape(5, -1), y[:5], 10, True, 0, image_shape=(32, 32, 3)
    )
    np.testing.assert_array_equal(flat.x_train, s.x_train)


def test_manifest_image_shape(tmp_path: Path) -> None:
    x = np.zeros((20, 784), np.uint8)
    y = (np.arange(20) % 10).astype(np.uint8)
    save_split(tmp_path, split_validation(x, y, x, y, 10, True, 0), {})
    manifest = io.read_json(tmp_path / "manifest.json")
    assert manifest["image_shape"] == [28, 28, 1]
    # A manifest from before image_shape existed is an MNIST split.
    del manifest["image_shape"]
    io.write_json(tmp_path / "manifest.json", manifest)
    assert load_split(tmp_path).image_shape == (28, 28, 1)
    for bad in ([28, 28], [0, 28, 1], "28x28", [28.0, 28, 1]):
        manifest["image_shape"] = bad
        io.write_json(tmp_path / "manifest.json", manifest)
        with pytest.raises(DataError, match=r"image_shape is .*expected \[height, width"):
            load_split(tmp_path)
    manifest["image_shape"] = [32, 32, 3]  # rows of 784 are not 32x32x3 images
    io.write_json(tmp_path / "manifest.json", manifest)
    with pytest.raises(DataError, match=r"split.npz: .*expected \(N, 3072\)"):
        load_split(tmp_path)


# --------------------------------------------------------------------------- CIFAR-10


def write_cifar_archive(root: Path, files: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    import tarfile

    src = write_cifar_dir(root / "src", files)
    root.mkdir(exist_ok=True)
    archive = root / CIFAR_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / CIFAR_BATCH_DIR, arcname=CIFAR_BATCH_DIR)
    shutil.rmtree(src)
    return archive


def test_cifar_record_layout_is_rgb_planes_to_hwc() -> None:
    # One image whose every byte says where it came from: R plane 0..., G and B offset.
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    planes = np.stack([(h * 7 + w) % 256, (h + w * 3) % 256, (h * w) % 256]).astype(np.uint8)
    raw = bytes([7]) + planes[0].tobytes() + planes[1].tobytes() + planes[2].tobytes()
    assert len(raw) == 3073 == CIFAR_RECORD
    x, y = parse_cifar_batch(raw * 2, "test")
    assert y.tolist() == [7, 7] and x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(x[0, :, :, c], planes[c])
    # Flattened HWC: pixel (h, w) channel c sits at (h * 32 + w) * 3 + c.
    row = x.reshape(2, -1)[0]
    assert row[(5 * 32 + 9) * 3 + 1] == planes[1, 5, 9] and row[2] == planes[2, 0, 0]


@pytest.mark.parametrize("size", [0, 3072, 3074, 3073 * 2 - 1])
def test_cifar_bad_sizes(size: int) -> None:
    with pytest.raises(DataError, match=rf"src: {size} bytes, not a whole number of 3073-byte"):
        parse_cifar_batch(bytes(size), "src")


def test_cifar_bad_label() -> None:
    raw = bytes([3]) + bytes(3072) + bytes([10]) + bytes(3072)
    with pytest.raises(DataError, match=r"src: label 10 at index 1 is outside 0..9"):
        parse_cifar_batch(raw, "src")


def test_cifar_extracted_files_load(tmp_path: Path) -> None:
    files = tiny_cifar()
    root = write_cifar_dir(tmp_path / "cifar10", files)
    (x_train, y_train, x_test, y_test), source = load_cifar10(root)
    assert x_train.shape == (60, 32, 32, 3) and x_test.shape == (10, 32, 32, 3)
    want = np.concatenate([files[n][1] for n in CIFAR_TRAIN_FILES]).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(x_train, want)
    np.testing.assert_array_equal(y_train, np.concatenate([files[n][0] for n in CIFAR_TRAIN_FILES]))
    np.testing.assert_array_equal(x_test, files[CIFAR_TEST_FILE][1].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y_test, files[CIFAR_TEST_FILE][0])
    assert source["check"].startswith("format only")
    for name in cifar_files():
        path = root / CIFAR_BATCH_DIR / name
        assert source[f"{CIFAR_BATCH_DIR}/{name}"]["sha256"] == io_sha256(path)


def io_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cifar_user_checksums(tmp_path: Path) -> None:
    root = write_cifar_dir(tmp_path / "cifar10", tiny_cifar())
    names = [f"{CIFAR_BATCH_DIR}/{n}" for n in cifar_files()]
    sums = "".join(f"{io_sha256(root / n)}  {n}\n" for n in names)
    (root / "SHA256SUMS").write_text(sums)
    _, source = load_cifar10(root)
    assert source["check"] == "SHA-256 against SHA256SUMS"
    victim = root / CIFAR_BATCH_DIR / "data_batch_3.bin"
    raw = bytearray(victim.read_bytes())
    raw[5] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"data_batch_3.bin: SHA-256 is .*cifar-10-binary.tar.gz"):
        load_cifar10(root)


def test_cifar_missing_files_say_where_and_what(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    with pytest.raises(DataError) as exc:
        load_cifar10(root)
    msg = str(exc.value)
    assert f"{root}: directory not found" in msg
    for needed in (CIFAR_ARCHIVE, CIFAR_ARCHIVE_MD5, CIFAR_URL, "dvc import-url"):
        assert needed in msg, msg
    write_cifar_dir(root, tiny_cifar())
    (root / CIFAR_BATCH_DIR / "test_batch.bin").unlink()
    (root / CIFAR_BATCH_DIR / "data_batch_2.bin").unlink()
    with pytest.raises(DataError) as exc:
        load_cifar10(root)
    msg = str(exc.value)
    assert (
        "data_batch_2.bin: file not found (CIFAR-10 lacks data_batch_2.bin, test_batch.bin)" in msg
    )
    assert CIFAR_ARCHIVE_MD5 in msg and "cifar-10-batches-bin/data_batch_1.bin" in msg


def test_cifar_truncated_file(tmp_path: Path) -> None:
    root = write_cifar_dir(tmp_path / "cifar10", tiny_cifar())
    path = root / CIFAR_BATCH_DIR / "data_batch_4.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"data_batch_4.bin: 36776 bytes, not a whole number"):
        load_cifar10(root)


def test_cifar_archive(tmp_path: Path) -> None:
    files = tiny_cifar(seed=3)
    from_dir, _ = load_cifar10(write_cifar_dir(tmp_path / "extracted", files))
    archive = write_cifar_archive(tmp_path / "cifar10", files)
    # The official archive's md5 is checked: these tiny files are not it.
    with pytest.raises(DataError) as exc:
        load_cifar10(archive.parent)
    msg = str(exc.value)
    assert f"expected {CIFAR_ARCHIVE_MD5}" in msg and CIFAR_URL in msg
    from_archive, source = load_cifar10(archive.parent, verify=False)
    for a, b in zip(from_dir, from_archive, strict=True):
        np.testing.assert_array_equal(a, b)
    digest = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
    assert source[CIFAR_ARCHIVE] == {"md5": digest, "sha256": io_sha256(archive)}


def test_cifar_archive_without_a_member_or_corrupt(tmp_path: Path) -> None:
    files = tiny_cifar()
    del files["data_batch_5.bin"]
    archive = write_cifar_archive(tmp_path / "cifar10", files)
    with pytest.raises(DataError, match=r"no cifar-10-batches-bin/data_batch_5.bin inside"):
        load_cifar10(archive.parent, verify=False)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"not a readable .tar.gz"):
        load_cifar10(archive.parent, verify=False)


def test_prepare_cifar10(tmp_path: Path) -> None:
    files = tiny_cifar(seed=5, per_file=20)
    root = write_cifar_dir(tmp_path / "cifar10", files)
    m = prepare(root, tmp_path / "out", 20, stratified=True, seed=0, dataset="cifar10")
    assert m["dataset"] == "cifar10" and m["image_shape"] == [32, 32, 3]
    assert m["sizes"] == {"train": 80, "val": 20, "test": 10}
    assert m["source"]["check"].startswith("format only")
    split = load_split(tmp_path / "out")
    assert split.image_shape == (32, 32, 3) and split.x_train.shape == (80, 3072)
    np.testing.assert_array_equal(
        split.images("test"), files[CIFAR_TEST_FILE][1].transpose(0, 2, 3, 1)
    )
    # Train + val are the 100 training images, each HWC-flattened row intact.
    original = np.concatenate([files[n][1] for n in CIFAR_TRAIN_FILES]).transpose(0, 2, 3, 1)
    assert row_counter(np.concatenate([split.x_train, split.x_val])) == row_counter(
        original.reshape(100, -1)
    )


def test_split_refuses_a_network_of_another_input_shape() -> None:
    x = np.zeros((4, 784), np.uint8)
    y = np.zeros(4, np.uint8)
    split = Split(x, y, x, y, x, y)
    split.require_image_shape((28, 28, 1), "mlp 784-300-100-10 on 28x28x1")
    with pytest.raises(DataError, match=r"holds 28x28x1 images, conv2 on 32x32x3 expects 32x32x3"):
        split.require_image_shape((32, 32, 3), "conv2 on 32x32x3")
