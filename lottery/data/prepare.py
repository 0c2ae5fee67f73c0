"""A dataset by name: read and verify its files (`idx` or `cifar`, as the catalogue in
`lottery.core.datasets` says), split off the validation set and save the split.

`mnist` (the default) and `fashion-mnist` are committed under `data/<name>/`
(gzip-compressed IDX, checksummed in `data/<name>/SHA256SUMS`). `cifar10` is the official
binary version, placed by the user under `data/cifar10/` (`cifar.cifar_files`). Nothing is
downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lottery.core import io
from lottery.core.datasets import DataError, dataset_info
from lottery.data.cifar import load_cifar10
from lottery.data.idx import Arrays, load_mnist, verify_idx
from lottery.data.split import MANIFEST_FILE, save_split, split_validation


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
    checksums = verify_idx(data_dir) if verify else {}
    arrays = load_mnist(data_dir, verify=False)
    return arrays, {file: {"sha256": digest} for file, digest in checksums.items()}


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
