"""The IDX datasets (MNIST and Fashion-MNIST): their four gzip-compressed IDX files, read
strictly (magic number, image size, data length, label range) and checked against the
directory's `SHA256SUMS`.

Every failure raises `DataError`, whose message names the file, what is wrong with it and
how to fix it.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from lottery.core.arch import N_CLASSES
from lottery.core.datasets import DataError
from lottery.data.checksums import restore_fix, verify_files

IMAGE_SIDE = 28
IMAGES_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte data, 1 dimension

#: role -> file name inside an IDX dataset's directory (MNIST and Fashion-MNIST alike).
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: (x_train, y_train, x_test, y_test) of a dataset, as read from its files.
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def verify_idx(data_dir: Path) -> dict[str, str]:
    """Check the four files of `MNIST_FILES` in `data_dir` against its `SHA256SUMS`; return
    file name -> sha256."""
    return verify_files(data_dir, tuple(MNIST_FILES.values()))


def _gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip file (DataError if missing, truncated or not gzip)."""
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {restore_fix(path)}.") from None
    except EOFError:
        raise DataError(
            f"{path}: the gzip stream is truncated (the file ended early); {restore_fix(path)}."
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc}); {restore_fix(path)}.") from None


def _idx_dims(raw: bytes, path: Path, kind: Literal["images", "labels"]) -> tuple[int, ...]:
    """The dims of an IDX header, checked: magic, image size, and data length."""
    magic_expected, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    header_len = 4 + 4 * ndim
    fix = restore_fix(path)
    if len(raw) < header_len:
        raise DataError(
            f"{path}: {len(raw)} bytes after decompression, too short for an IDX {kind} "
            f"header ({header_len} bytes); {fix}."
        )
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != magic_expected:
        hint = ""
        if magic in (IMAGES_MAGIC, LABELS_MAGIC):
            other = "images" if magic == IMAGES_MAGIC else "labels"
            hint = f" (that is the magic of an IDX {other} file: were the files swapped?)"
        raise DataError(
            f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{magic_expected:08x} "
            f"for {kind}{hint}; {fix}."
        )
    dims: tuple[int, ...] = struct.unpack(f">{ndim}I", raw[4:header_len])
    if kind == "images" and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(
            f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}; {fix}."
        )
    n_expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header_len != n_expected:
        raise DataError(
            f"{path}: header {'x'.join(map(str, dims))} promises {n_expected} data bytes, the "
            f"file holds {len(raw) - header_len}; {fix}."
        )
    return dims


def check_labels(y: np.ndarray, source: str, fix: str) -> None:
    """DataError naming the first label of `y` outside 0..9 (`source` and `fix` end it)."""
    if y.size and int(y.max()) >= N_CLASSES:
        bad = int(np.flatnonzero(y >= N_CLASSES)[0])
        raise DataError(
            f"{source}: label {int(y[bad])} at index {bad} is outside 0..{N_CLASSES - 1}; {fix}."
        )


def read_idx(path: Path, kind: Literal["images", "labels"]) -> np.ndarray:
    """Read a gzip-compressed IDX file (MNIST, Fashion-MNIST) strictly.

    images: magic 0x00000803, dims (N, 28, 28) -> uint8 array (N, 28, 28).
    labels: magic 0x00000801, dims (N,), values 0..9 -> uint8 array (N,).
    The data must be exactly as long as the header says. Any deviation raises DataError.
    """
    path = Path(path)
    if kind not in ("images", "labels"):
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    raw = _gunzip(path)
    dims = _idx_dims(raw, path, kind)
    header_len = 4 + 4 * len(dims)
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()
    if kind == "labels":
        check_labels(arr, str(path), restore_fix(path))
    return arr


def load_mnist(mnist_dir: Path, verify: bool = True) -> Arrays:
    """Return (x_train, y_train, x_test, y_test): uint8 (N, 28, 28) images and (N,) labels.

    Reads any directory of the four MNIST-format files (`MNIST_FILES`): MNIST and
    Fashion-MNIST. With `verify` the checksums are checked first (`verify_idx`).
    """
    mnist_dir = Path(mnist_dir)
    if verify:
        verify_idx(mnist_dir)
    arrays = {
        role: read_idx(mnist_dir / name, "images" if role.endswith("images") else "labels")
        for role, name in MNIST_FILES.items()
    }
    for part in ("train", "test"):
        n_img = arrays[f"{part}_images"].shape[0]
        n_lab = arrays[f"{part}_labels"].shape[0]
        if n_img != n_lab:
            labels = mnist_dir / MNIST_FILES[f"{part}_labels"]
            raise DataError(
                f"{labels}: {n_lab} labels for {n_img} images "
                f"in {MNIST_FILES[f'{part}_images']}; {restore_fix(labels)}."
            )
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )
