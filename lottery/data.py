"""MNIST: read the committed IDX files, verify their checksums, split, save and load.

The canonical files live in `data/mnist/` (gzip-compressed IDX, checksummed in
`data/mnist/SHA256SUMS`). Nothing is downloaded. Every failure raises `DataError`, whose
message names the file, what is wrong with it and how to fix it.

The prepared split (`split.npz` + `manifest.json`) keeps pixels as uint8, images flattened
to 784 columns; scaling to [0, 1] is the training engine's job.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lottery import io
from lottery.arch import N_CLASSES, N_INPUTS
from lottery.errors import UserError

IMAGE_SIDE = 28
IMAGES_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte data, 1 dimension
CHECKSUMS_FILE = "SHA256SUMS"
SPLIT_FILE = "split.npz"
MANIFEST_FILE = "manifest.json"
SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")

#: role -> file name inside the MNIST directory.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

_RESTORE = "restore the committed files with `git checkout -- data/mnist`"
_REPREPARE = "rerun `dvc repro prepare` to rebuild the split"
_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class DataError(UserError, ValueError):
    """A data file is missing, corrupt or inconsistent (the message says which and how to fix)."""


# --------------------------------------------------------------------------- checksums


def read_checksums(path: Path) -> dict[str, str]:
    """Parse a `sha256sum`-style file: `<64 hex digits><space><space or *><file name>` per line.

    Returns file name -> lower-case hex digest. Blank lines and `#` comments are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: checksum file not found; {_RESTORE}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the checksum file ({exc}); {_RESTORE}.") from None
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SHA256_LINE.match(line)
        if match is None:
            raise DataError(
                f"{path}:{lineno}: malformed line {raw!r}; expected '<sha256 hex>  <file name>' "
                f"(the output of `sha256sum`); {_RESTORE}."
            )
        digest, name = match.group(1).lower(), match.group(2).strip()
        if name in sums and sums[name] != digest:
            raise DataError(
                f"{path}:{lineno}: {name} is listed twice with different checksums; {_RESTORE}."
            )
        sums[name] = digest
    if not sums:
        raise DataError(f"{path}: no checksums found in the file; {_RESTORE}.")
    return sums


def verify_files(mnist_dir: Path) -> dict[str, str]:
    """Check every file of `MNIST_FILES` against `SHA256SUMS`; return file name -> sha256."""
    mnist_dir = Path(mnist_dir)
    sums_path = mnist_dir / CHECKSUMS_FILE
    expected = read_checksums(sums_path)
    found: dict[str, str] = {}
    for name in MNIST_FILES.values():
        path = mnist_dir / name
        if not path.is_file():
            raise DataError(f"{path}: file not found; {_RESTORE}.")
        if name not in expected:
            raise DataError(
                f"{path}: not listed in {sums_path}, so it cannot be verified; "
                f"{_RESTORE} (both the file and {CHECKSUMS_FILE})."
            )
        actual = io.sha256_file(path)
        if actual != expected[name]:
            raise DataError(
                f"{path}: SHA-256 is {actual}, expected {expected[name]} (from {sums_path}). "
                f"The file is corrupt or was replaced: {_RESTORE}."
            )
        found[name] = actual
    return found


# --------------------------------------------------------------------------- IDX parsing


def read_idx(path: Path, kind: Literal["images", "labels"]) -> np.ndarray:
    """Read a gzip-compressed MNIST IDX file strictly.

    images: magic 0x00000803, dims (N, 28, 28) -> uint8 array (N, 28, 28).
    labels: magic 0x00000801, dims (N,), values 0..9 -> uint8 array (N,).
    The data must be exactly as long as the header says. Any deviation raises DataError.
    """
    path = Path(path)
    if kind not in ("images", "labels"):
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_RESTORE}.") from None
    except EOFError:
        raise DataError(
            f"{path}: the gzip stream is truncated (the file ended early); {_RESTORE}."
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc}); {_RESTORE}.") from None

    magic_expected, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(
            f"{path}: {len(raw)} bytes after decompression, too short for an IDX {kind} "
            f"header ({header_len} bytes); {_RESTORE}."
        )
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != magic_expected:
        hint = ""
        if magic in (IMAGES_MAGIC, LABELS_MAGIC):
            other = "images" if magic == IMAGES_MAGIC else "labels"
            hint = f" (that is the magic of an IDX {other} file: were the files swapped?)"
        raise DataError(
            f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{magic_expected:08x} "
            f"for {kind}{hint}; {_RESTORE}."
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    if kind == "images" and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(
            f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}; "
            f"{_RESTORE}."
        )
    n_expected = int(np.prod(dims, dtype=np.int64))
    n_actual = len(raw) - header_len
    if n_actual != n_expected:
        raise DataError(
            f"{path}: header {'x'.join(map(str, dims))} promises {n_expected} data bytes, the "
            f"file holds {n_actual}; {_RESTORE}."
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()
    if kind == "labels" and arr.size and int(arr.max()) >= N_CLASSES:
        bad = int(np.flatnonzero(arr >= N_CLASSES)[0])
        raise DataError(
            f"{path}: label {int(arr[bad])} at index {bad} is outside 0..{N_CLASSES - 1}; "
            f"{_RESTORE}."
        )
    return arr


def load_mnist(
    mnist_dir: Path, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test): uint8 (N, 28, 28) images and (N,) labels.

    With `verify` the checksums are checked first (`verify_files`).
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
            raise DataError(
                f"{mnist_dir / MNIST_FILES[f'{part}_labels']}: {n_lab} labels for {n_img} images "
                f"in {MNIST_FILES[f'{part}_images']}; {_RESTORE}."
            )
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


# --------------------------------------------------------------------------- split


def class_counts(y: np.ndarray) -> list[int]:
    """Number of examples of each class 0..9."""
    return [int(c) for c in np.bincount(np.asarray(y, dtype=np.int64), minlength=N_CLASSES)]


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays: x uint8 (N, 784), y uint8 (N,) with labels 0..9.

    The shapes, dtypes and label range are checked on construction (DataError).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for part in SPLIT_PARTS:
            x, y = self.part(part)
            if x.dtype != np.uint8 or y.dtype != np.uint8:
                raise DataError(
                    f"split part {part!r}: dtypes are x {x.dtype}, y {y.dtype}; expected uint8 "
                    f"(raw pixels and labels); {_REPREPARE}."
                )
            if x.ndim != 2 or x.shape[1] != N_INPUTS or y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise DataError(
                    f"split part {part!r}: shapes are x {x.shape}, y {y.shape}; expected "
                    f"(N, {N_INPUTS}) and (N,); {_REPREPARE}."
                )
            if y.size and int(y.max()) >= N_CLASSES:
                raise DataError(
                    f"split part {part!r}: label {int(y.max())} outside 0..{N_CLASSES - 1}; "
                    f"{_REPREPARE}."
                )

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
        return {f"{xy}_{p}": getattr(self, f"{xy}_{p}") for p in SPLIT_PARTS for xy in "xy"}


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
) -> Split:
    """Hold `validation_size` training examples out for validation (see `validation_indices`).

    Both the validation set and the remaining training set keep the original order of the
    training file (the training engine shuffles batches with its own seed). The test set
    is returned unchanged (flattened). Images are flattened to (N, 784).
    """
    x_train = np.asarray(x_train).reshape(len(x_train), -1)
    x_test = np.asarray(x_test).reshape(len(x_test), -1)
    y_train = np.asarray(y_train)
    if x_train.shape[0] != y_train.shape[0]:
        raise DataError(
            f"{x_train.shape[0]} training images but {y_train.shape[0]} labels; {_RESTORE}."
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
    )


# --------------------------------------------------------------------------- save / load


def save_split(out_dir: Path, split: Split, manifest: dict[str, Any]) -> None:
    """Write `out_dir/split.npz` and `out_dir/manifest.json` (both atomically).

    The manifest is `manifest` plus `sizes`, `class_counts` (per part, classes 0..9) and
    `split_sha256` (SHA-256 of the split.npz file as written).
    """
    out_dir = Path(out_dir)
    npz_path = out_dir / SPLIT_FILE
    io.save_npz(npz_path, split.arrays())
    full = dict(manifest)
    full["sizes"] = split.sizes()
    full["class_counts"] = split.class_counts()
    full["split_sha256"] = io.sha256_file(npz_path)
    io.write_json(out_dir / MANIFEST_FILE, full)


def load_split(out_dir: Path) -> Split:
    """Load a split written by `save_split`, checking its SHA-256 against manifest.json."""
    out_dir = Path(out_dir)
    npz_path = out_dir / SPLIT_FILE
    manifest_path = out_dir / MANIFEST_FILE
    for path in (npz_path, manifest_path):
        if not path.is_file():
            raise DataError(f"{path}: file not found; {_REPREPARE}.")
    try:
        manifest = io.read_json(manifest_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{manifest_path}: unreadable JSON ({exc}); {_REPREPARE}.") from None
    expected = manifest.get("split_sha256") if isinstance(manifest, dict) else None
    if not isinstance(expected, str):
        raise DataError(f"{manifest_path}: no 'split_sha256' entry; {_REPREPARE}.")
    actual = io.sha256_file(npz_path)
    if actual != expected:
        raise DataError(
            f"{npz_path}: SHA-256 is {actual}, expected {expected} (from {manifest_path}). "
            f"The split was modified or is stale: {_REPREPARE}."
        )
    fields = list(Split.__dataclass_fields__)
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            missing = sorted(set(fields) - set(npz.files))
            if missing:
                raise DataError(f"{npz_path}: arrays {missing} missing; {_REPREPARE}.")
            arrays = {name: npz[name] for name in fields}
    except DataError:
        raise
    except Exception as exc:  # zip/npy errors of any kind, pickled arrays included
        raise DataError(f"{npz_path}: cannot be read ({exc}); {_REPREPARE}.") from None
    try:
        return Split(**arrays)
    except DataError as exc:
        raise DataError(f"{npz_path}: {exc}") from None


def prepare(
    mnist_dir: Path, out_dir: Path, validation_size: int, stratified: bool, seed: int
) -> dict[str, Any]:
    """Verify, load, split and save MNIST; return the manifest written to manifest.json."""
    mnist_dir = Path(mnist_dir)
    checksums = verify_files(mnist_dir)
    x_train, y_train, x_test, y_test = load_mnist(mnist_dir, verify=False)
    split = split_validation(x_train, y_train, x_test, y_test, validation_size, stratified, seed)
    manifest: dict[str, Any] = {
        "source": {name: {"sha256": digest} for name, digest in checksums.items()},
        "validation_size": int(validation_size),
        "stratified": bool(stratified),
        "seed": int(seed),
        "order": "validation and train keep the original order of the training file",
    }
    save_split(out_dir, split, manifest)
    result: dict[str, Any] = io.read_json(Path(out_dir) / MANIFEST_FILE)
    return result
