"""The datasets: read the files, verify their checksums, split, save and load.

`mnist` (the default) and `fashion-mnist` are committed under `data/<name>/`
(gzip-compressed IDX, checksummed in `data/<name>/SHA256SUMS`). `cifar10` is the official
binary version, placed by the user under `data/cifar10/` (`cifar_files`). Nothing is
downloaded. Every failure raises `DataError`, whose message names the file, what is wrong
with it and how to fix it.

The prepared split (`split.npz` + `manifest.json`) keeps pixels as uint8, each image
flattened in (height, width, channel) order to one row (784 columns for 28×28×1, 3072 for
32×32×3); the manifest's `image_shape` gives (H, W, C) back. Scaling to [0, 1] is the
training engine's job.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lottery.core import io
from lottery.core.arch import N_CLASSES
from lottery.core.datasets import MNIST_SHAPE, DataError, dataset_info

IMAGE_SIDE = 28
IMAGES_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte data, 1 dimension
CHECKSUMS_FILE = "SHA256SUMS"
SPLIT_FILE = "split.npz"
MANIFEST_FILE = "manifest.json"
SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")

#: role -> file name inside an IDX dataset's directory (MNIST and Fashion-MNIST alike).
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # as published on the CIFAR page
CIFAR_BATCH_DIR = "cifar-10-batches-bin"
CIFAR_TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR_RECORD = 1 + 32 * 32 * 3  # a label byte, then 1024 red, 1024 green, 1024 blue bytes


_REPREPARE = "rerun `dvc repro prepare` to rebuild the split"
_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def _restore(path: Path) -> str:
    """The fix for a bad committed file: check its directory out again."""
    return f"restore the committed files with `git checkout -- {Path(path).parent}`"


# --------------------------------------------------------------------------- checksums


def read_checksums(path: Path, fix: str | None = None) -> dict[str, str]:
    """Parse a `sha256sum`-style file: `<64 hex digits><space><space or *><file name>` per line.

    Returns file name -> lower-case hex digest. Blank lines and `#` comments are skipped.
    `fix` ends every error message (default: check the committed directory out again).
    """
    path = Path(path)
    fix = fix or _restore(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: checksum file not found; {fix}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the checksum file ({exc}); {fix}.") from None
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SHA256_LINE.match(line)
        if match is None:
            raise DataError(
                f"{path}:{lineno}: malformed line {raw!r}; expected '<sha256 hex>  <file name>' "
                f"(the output of `sha256sum`); {fix}."
            )
        digest, name = match.group(1).lower(), match.group(2).strip()
        if name in sums and sums[name] != digest:
            raise DataError(
                f"{path}:{lineno}: {name} is listed twice with different checksums; {fix}."
            )
        sums[name] = digest
    if not sums:
        raise DataError(f"{path}: no checksums found in the file; {fix}.")
    return sums


def verify_files(
    data_dir: Path, names: tuple[str, ...] | None = None, fix: str | None = None
) -> dict[str, str]:
    """Check files of `data_dir` against its `SHA256SUMS`; return file name -> sha256.

    `names` defaults to the four files of `MNIST_FILES` (MNIST and Fashion-MNIST).
    """
    data_dir = Path(data_dir)
    sums_path = data_dir / CHECKSUMS_FILE
    fix = fix or _restore(sums_path)
    expected = read_checksums(sums_path, fix)
    found: dict[str, str] = {}
    for name in names or tuple(MNIST_FILES.values()):
        path = data_dir / name
        if not path.is_file():
            raise DataError(f"{path}: file not found; {fix}.")
        if name not in expected:
            raise DataError(
                f"{path}: not listed in {sums_path}, so it cannot be verified; "
                f"{fix} (both the file and {CHECKSUMS_FILE})."
            )
        actual = io.sha256_file(path)
        if actual != expected[name]:
            raise DataError(
                f"{path}: SHA-256 is {actual}, expected {expected[name]} (from {sums_path}). "
                f"The file is corrupt or was replaced: {fix}."
            )
        found[name] = actual
    return found


# --------------------------------------------------------------------------- IDX parsing


def _gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip file (DataError if missing, truncated or not gzip)."""
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_restore(path)}.") from None
    except EOFError:
        raise DataError(
            f"{path}: the gzip stream is truncated (the file ended early); {_restore(path)}."
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc}); {_restore(path)}.") from None


def _idx_dims(raw: bytes, path: Path, kind: Literal["images", "labels"]) -> tuple[int, ...]:
    """The dims of an IDX header, checked: magic, image size, and data length."""
    magic_expected, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    header_len = 4 + 4 * ndim
    fix = _restore(path)
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


def _check_labels(y: np.ndarray, source: str, fix: str) -> None:
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
        _check_labels(arr, str(path), _restore(path))
    return arr


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_mnist(mnist_dir: Path, verify: bool = True) -> Arrays:
    """Return (x_train, y_train, x_test, y_test): uint8 (N, 28, 28) images and (N,) labels.

    Reads any directory of the four MNIST-format files (`MNIST_FILES`): MNIST and
    Fashion-MNIST. With `verify` the checksums are checked first (`verify_files`).
    """
    mnist_dir = Path(mnist_dir)
    if verify:
        verify_files(mnist_dir)
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
                f"in {MNIST_FILES[f'{part}_images']}; {_restore(labels)}."
            )
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


# --------------------------------------------------------------------------- CIFAR-10


def cifar_files() -> tuple[str, ...]:
    """The six files of the binary version, as named inside `cifar-10-batches-bin/`."""
    return (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)


def _cifar_placement(cifar_dir: Path) -> str:
    return (
        f"place the official CIFAR-10 binary version there: the archive "
        f"{cifar_dir / CIFAR_ARCHIVE} (md5 {CIFAR_ARCHIVE_MD5}, from {CIFAR_URL}; e.g. "
        f"`dvc import-url {CIFAR_URL} {cifar_dir}/`), or the files extracted from it, "
        f"{cifar_dir / CIFAR_BATCH_DIR}/data_batch_1.bin .. data_batch_5.bin and test_batch.bin"
    )


def parse_cifar_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One file of CIFAR-10's binary version -> (x uint8 (N, 32, 32, 3), y uint8 (N,)).

    Each record is 1 label byte (0..9) and 3072 pixel bytes: the 1024 red values of the
    32×32 image in row-major order, then the green, then the blue. Images come back in
    (height, width, channel) order. A size that is not a positive multiple of 3073 bytes, or
    a label outside 0..9, raises DataError.
    """
    fix = f"replace it with the file from the official archive ({CIFAR_URL})"
    if not raw or len(raw) % CIFAR_RECORD:
        raise DataError(
            f"{source}: {len(raw)} bytes, not a whole number of {CIFAR_RECORD}-byte records "
            f"(a label byte + 32x32x3 pixels): truncated, or not CIFAR-10's binary version; {fix}."
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    y = records[:, 0].copy()
    _check_labels(y, source, fix)
    x = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _tar_member(tar: tarfile.TarFile, archive: Path, name: str) -> bytes:
    try:
        member = tar.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise DataError(f"{archive}: no {name} inside; is it the binary version ({CIFAR_URL})?")
    return member.read()


def _read_cifar_archive(archive: Path, verify: bool) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The six files' bytes from the official archive, whose md5 is checked with `verify`."""
    blob = archive.read_bytes()
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    if verify and md5 != CIFAR_ARCHIVE_MD5:
        raise DataError(
            f"{archive}: md5 is {md5}, expected {CIFAR_ARCHIVE_MD5} (the official "
            f"{CIFAR_ARCHIVE}). The file is corrupt or another one: download it again from "
            f"{CIFAR_URL}."
        )
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in cifar_files():
                files[name] = _tar_member(tar, archive, f"{CIFAR_BATCH_DIR}/{name}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{archive}: not a readable .tar.gz ({exc}); download it again from {CIFAR_URL}."
        ) from None
    source = {CIFAR_ARCHIVE: {"md5": md5, "sha256": hashlib.sha256(blob).hexdigest()}}
    return files, source


def _read_cifar_extracted(cifar_dir: Path, verify: bool) -> tuple[dict[str, bytes], str]:
    """The six extracted files' bytes; checked against `cifar_dir/SHA256SUMS` if there is one."""
    batch_dir = cifar_dir / CIFAR_BATCH_DIR
    missing = [name for name in cifar_files() if not (batch_dir / name).is_file()]
    if missing:
        raise DataError(
            f"{batch_dir / missing[0]}: file not found (CIFAR-10 lacks "
            f"{', '.join(missing)}); {_cifar_placement(cifar_dir)}."
        )
    check = "format only: no official SHA-256 of the extracted files is published"
    if verify and (cifar_dir / CHECKSUMS_FILE).is_file():
        names = tuple(f"{CIFAR_BATCH_DIR}/{name}" for name in cifar_files())
        fix = f"{_cifar_placement(cifar_dir)}, or fix {cifar_dir / CHECKSUMS_FILE}"
        verify_files(cifar_dir, names, fix)
        check = f"SHA-256 against {CHECKSUMS_FILE}"
    return {name: (batch_dir / name).read_bytes() for name in cifar_files()}, check


def load_cifar10(cifar_dir: Path, verify: bool = True) -> tuple[Arrays, dict[str, Any]]:
    """((x_train, y_train, x_test, y_test), source) from CIFAR-10's binary version.

    Reads `cifar_dir/cifar-10-binary.tar.gz` (its md5 checked against the published one
    with `verify`) if present, else the extracted `cifar_dir/cifar-10-batches-bin/*.bin`
    (checked against `cifar_dir/SHA256SUMS` when the user keeps one, else for format only).
    Images are uint8 (N, 32, 32, 3). `source` records each file's SHA-256 and the check made.
    """
    cifar_dir = Path(cifar_dir)
    archive = cifar_dir / CIFAR_ARCHIVE
    if archive.is_file():
        files, source = _read_cifar_archive(archive, verify)
        source["check"] = f"md5 of {CIFAR_ARCHIVE} as published" if verify else "none"
    elif not cifar_dir.is_dir():
        raise DataError(f"{cifar_dir}: directory not found; {_cifar_placement(cifar_dir)}.")
    else:
        files, check = _read_cifar_extracted(cifar_dir, verify)
        source = {
            f"{CIFAR_BATCH_DIR}/{name}": {"sha256": hashlib.sha256(raw).hexdigest()}
            for name, raw in files.items()
        }
        source["check"] = check if verify else "none"
    where = str(archive) if archive.is_file() else str(cifar_dir / CIFAR_BATCH_DIR)
    parts = {name: parse_cifar_batch(raw, f"{where}: {name}") for name, raw in files.items()}
    x_train = np.concatenate([parts[name][0] for name in CIFAR_TRAIN_FILES])
    y_train = np.concatenate([parts[name][1] for name in CIFAR_TRAIN_FILES])
    x_test, y_test = parts[CIFAR_TEST_FILE]
    return (x_train, y_train, x_test, y_test), source


def load_dataset(name: str, data_dir: Path, verify: bool = True) -> tuple[Arrays, dict[str, Any]]:
    """((x_train, y_train, x_test, y_test), source) of dataset `name` read from `data_dir`.

    Images are uint8 (N, H, W) for single-channel datasets, (N, H, W, C) otherwise; `source`
    maps each file read to its checksums (and, for CIFAR-10, the check made).
    """
    info = dataset_info(name)
    if info.format == "cifar-bin":
        return load_cifar10(Path(data_dir), verify)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"{data_dir}: directory not found; {name} is committed under {info.directory}: "
            f"`git checkout -- {info.directory}`."
        )
    checksums = verify_files(data_dir) if verify else {}
    arrays = load_mnist(data_dir, verify=False)
    return arrays, {file: {"sha256": digest} for file, digest in checksums.items()}


# --------------------------------------------------------------------------- split


def class_counts(y: np.ndarray) -> list[int]:
    """Number of examples of each class 0..9."""
    return [int(c) for c in np.bincount(np.asarray(y, dtype=np.int64), minlength=N_CLASSES)]


#: The arrays of a split, by field name (the keys of split.npz).
ARRAY_FIELDS: tuple[str, ...] = tuple(f"{xy}_{p}" for p in SPLIT_PARTS for xy in "xy")


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays: x uint8 (N, H*W*C), each row an image flattened in
    (height, width, channel) order; y uint8 (N,) with labels 0..9. `image_shape` is
    (H, W, C): (28, 28, 1) for MNIST and Fashion-MNIST, (32, 32, 3) for CIFAR-10.

    The shapes, dtypes and label range are checked on construction (DataError).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int, int] = MNIST_SHAPE

    def __post_init__(self) -> None:
        width = int(np.prod(self.image_shape))
        for part in SPLIT_PARTS:
            x, y = self.part(part)
            if x.dtype != np.uint8 or y.dtype != np.uint8:
                raise DataError(
                    f"split part {part!r}: dtypes are x {x.dtype}, y {y.dtype}; expected uint8 "
                    f"(raw pixels and labels); {_REPREPARE}."
                )
            if x.ndim != 2 or x.shape[1] != width or y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise DataError(
                    f"split part {part!r}: shapes are x {x.shape}, y {y.shape}; expected "
                    f"(N, {width}) and (N,) for {'x'.join(map(str, self.image_shape))} images; "
                    f"{_REPREPARE}."
                )
            if y.size and int(y.max()) >= N_CLASSES:
                raise DataError(
                    f"split part {part!r}: label {int(y.max())} outside 0..{N_CLASSES - 1}; "
                    f"{_REPREPARE}."
                )

    def require_image_shape(self, expected: tuple[int, int, int], network: str) -> None:
        """DataError unless the images are `expected` (H, W, C), the input of `network`."""
        if tuple(self.image_shape) != tuple(expected):
            have, want = ("x".join(map(str, s)) for s in (self.image_shape, expected))
            raise DataError(
                f"the prepared split holds {have} images, {network} expects {want}: the split "
                f"is from another dataset; {_REPREPARE} (`dvc repro` does it when "
                "data.dataset changed)."
            )

    def images(self, name: str) -> np.ndarray:
        """The images of part `name` as uint8 (N, H, W, C) (a view, no copy)."""
        x, _ = self.part(name)
        return x.reshape(x.shape[0], *self.image_shape)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of 'train', 'val' or 'test'."""
        if name not in SPLIT_PARTS:
            raise KeyError(f"unknown split part {name!r}; expected one of {SPLIT_PARTS}")
        x: np.ndarray = getattr(self, f"x_{name}")
        y: np.ndarray = getattr(self, f"y_{name}")
        return x, y

    def sizes(self) -> dict[str, int]:
        """Number of examples per part: {'train': ..., 'val': ..., 'test': ...}."""
        return {p: int(self.part(p)[1].shape[0]) for p in SPLIT_PARTS}

    def class_counts(self) -> dict[str, list[int]]:
        """Per-class example counts (classes 0..9) of each part."""
        return {p: class_counts(self.part(p)[1]) for p in SPLIT_PARTS}

    def arrays(self) -> dict[str, np.ndarray]:
        """The six arrays by field name (the keys of split.npz)."""
        return {name: getattr(self, name) for name in ARRAY_FIELDS}


def _stratified_quotas(counts: list[int], validation_size: int) -> list[int]:
    """Per-class validation quotas proportional to `counts`, summing to `validation_size`.

    Largest-remainder (Hamilton) allocation in exact integer arithmetic: each class gets
    floor(v * c / n); the leftover examples go to the classes with the largest remainders,
    ties to the lower class label.
    """
    n = sum(counts)
    quotas = [validation_size * c // n for c in counts]
    remainders = [validation_size * c % n for c in counts]
    leftover = validation_size - sum(quotas)
    by_remainder = sorted(range(len(counts)), key=lambda k: (-remainders[k], k))
    for k in by_remainder[:leftover]:
        quotas[k] += 1
    return quotas


def validation_indices(
    y_train: np.ndarray, validation_size: int, stratified: bool, seed: int
) -> np.ndarray:
    """Sorted indices (into the training set) of the examples held out for validation.

    stratified: per-class quotas by largest remainder (`_stratified_quotas`), the examples
    of each class drawn uniformly without replacement, classes in order 0..9.
    not stratified: `validation_size` indices drawn uniformly without replacement.
    Both use `np.random.default_rng(seed)`, so the result is a function of the arguments.
    """
    y = np.asarray(y_train)
    n = int(y.shape[0])
    if isinstance(validation_size, bool) or not isinstance(validation_size, int | np.integer):
        raise DataError(f"validation_size must be an integer, got {validation_size!r}")
    if not 0 < validation_size < n:
        raise DataError(
            f"validation_size is {validation_size}, must satisfy 0 < validation_size < {n} "
            f"(the number of training examples); fix `validation_size` in params.yaml."
        )
    rng = np.random.default_rng(seed)
    if not stratified:
        chosen = rng.choice(n, size=int(validation_size), replace=False)
        return np.sort(chosen).astype(np.int64)
    counts = class_counts(y)
    quotas = _stratified_quotas(counts, int(validation_size))
    picks = [
        rng.choice(np.flatnonzero(y == k), size=q, replace=False)
        for k, q in enumerate(quotas)
        if q > 0
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def split_validation(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    validation_size: int,
    stratified: bool,
    seed: int,
    image_shape: tuple[int, int, int] | None = None,
) -> Split:
    """Hold `validation_size` training examples out for validation (see `validation_indices`).

    Both the validation set and the remaining training set keep the original order of the
    training file (the training engine shuffles batches with its own seed). The test set
    is returned unchanged (flattened). Images (N, H, W) or (N, H, W, C) are flattened to
    (N, H*W*C) in that order; `image_shape` is taken from them unless given (needed only
    for images that are already flat and not 28×28×1).
    """
    if image_shape is None:
        dims = np.shape(x_train)[1:]
        image_shape = MNIST_SHAPE if len(dims) < 2 else (dims[0], dims[1], (*dims, 1)[2])
    x_train = np.asarray(x_train).reshape(len(x_train), -1)
    x_test = np.asarray(x_test).reshape(len(x_test), -1)
    y_train = np.asarray(y_train)
    if x_train.shape[0] != y_train.shape[0]:
        raise DataError(
            f"{x_train.shape[0]} training images but {y_train.shape[0]} labels; check the "
            "dataset's files."
        )
    val = validation_indices(y_train, validation_size, stratified, seed)
    keep = np.ones(y_train.shape[0], dtype=bool)
    keep[val] = False
    return Split(
        x_train=np.ascontiguousarray(x_train[keep]),
        y_train=np.ascontiguousarray(y_train[keep]),
        x_val=np.ascontiguousarray(x_train[val]),
        y_val=np.ascontiguousarray(y_train[val]),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.ascontiguousarray(np.asarray(y_test)),
        image_shape=tuple(int(d) for d in image_shape),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- save / load


def save_split(out_dir: Path, split: Split, manifest: dict[str, Any]) -> None:
    """Write `out_dir/split.npz` and `out_dir/manifest.json` (both atomically).

    The manifest is `manifest` plus `image_shape` ([H, W, C]), `sizes`, `class_counts` (per
    part, classes 0..9) and `split_sha256` (SHA-256 of the split.npz file as written).
    """
    out_dir = Path(out_dir)
    npz_path = out_dir / SPLIT_FILE
    io.save_npz(npz_path, split.arrays())
    full = dict(manifest)
    full["image_shape"] = list(split.image_shape)
    full["sizes"] = split.sizes()
    full["class_counts"] = split.class_counts()
    full["split_sha256"] = io.sha256_file(npz_path)
    io.write_json(out_dir / MANIFEST_FILE, full)


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """The manifest of a prepared split, with its `split_sha256` and `image_shape` checked.

    A manifest written before `image_shape` existed is an MNIST split: (28, 28, 1).
    """
    path = Path(out_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"{path}: file not found; {_REPREPARE}.")
    try:
        manifest = io.read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc}); {_REPREPARE}.") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("split_sha256"), str):
        raise DataError(f"{path}: no 'split_sha256' entry; {_REPREPARE}.")
    shape = manifest.setdefault("image_shape", list(MNIST_SHAPE))
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise DataError(
            f"{path}: image_shape is {shape!r}, expected [height, width, channels]; {_REPREPARE}."
        )
    return manifest


def load_split(out_dir: Path) -> Split:
    """Load a split written by `save_split`, checking its SHA-256 against manifest.json."""
    out_dir = Path(out_dir)
    npz_path = out_dir / SPLIT_FILE
    if not npz_path.is_file():
        raise DataError(f"{npz_path}: file not found; {_REPREPARE}.")
    manifest = read_manifest(out_dir)
    expected = manifest["split_sha256"]
    actual = io.sha256_file(npz_path)
    if actual != expected:
        raise DataError(
            f"{npz_path}: SHA-256 is {actual}, expected {expected} (from "
            f"{out_dir / MANIFEST_FILE}). The split was modified or is stale: {_REPREPARE}."
        )
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            missing = sorted(set(ARRAY_FIELDS) - set(npz.files))
            if missing:
                raise DataError(f"{npz_path}: arrays {missing} missing; {_REPREPARE}.")
            arrays = {name: npz[name] for name in ARRAY_FIELDS}
    except DataError:
        raise
    except Exception as exc:  # zip/npy errors of any kind, pickled arrays included
        raise DataError(f"{npz_path}: cannot be read ({exc}); {_REPREPARE}.") from None
    try:
        return Split(**arrays, image_shape=tuple(manifest["image_shape"]))
    except DataError as exc:
        raise DataError(f"{npz_path}: {exc}") from None


def prepare(
    data_dir: Path,
    out_dir: Path,
    validation_size: int,
    stratified: bool,
    seed: int,
    dataset: str = "mnist",
) -> dict[str, Any]:
    """Verify, load, split and save `dataset` read from `data_dir`; return the manifest
    written to manifest.json (`dataset`, `image_shape` and each source file's checksums
    included)."""
    info = dataset_info(dataset)
    (x_train, y_train, x_test, y_test), source = load_dataset(info.name, Path(data_dir))
    split = split_validation(
        x_train, y_train, x_test, y_test, validation_size, stratified, seed, info.image_shape
    )
    manifest: dict[str, Any] = {
        "dataset": info.name,
        "source": source,
        "validation_size": int(validation_size),
        "stratified": bool(stratified),
        "seed": int(seed),
        "order": "validation and train keep the original order of the training file",
    }
    save_split(out_dir, split, manifest)
    result: dict[str, Any] = io.read_json(Path(out_dir) / MANIFEST_FILE)
    return result
