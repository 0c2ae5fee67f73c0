"""The prepared split: hold a validation set out of the training set, then save and load
the train / validation / test arrays (`split.npz`) with their `manifest.json`.

The split keeps pixels as uint8, each image flattened in (height, width, channel) order
to one row (784 columns for 28×28×1, 3072 for 32×32×3); the manifest's `image_shape`
gives (H, W, C) back. Scaling to [0, 1] is the training engine's job. Every failure
raises `DataError` saying how to rebuild the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lottery.core import io
from lottery.core.arch import N_CLASSES
from lottery.core.datasets import MNIST_SHAPE, DataError

SPLIT_FILE = "split.npz"
MANIFEST_FILE = "manifest.json"
SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")

_REPREPARE = "rerun `dvc repro prepare` to rebuild the split"


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
