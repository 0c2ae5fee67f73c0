"""CIFAR-10, binary version: read from the official archive (md5 as published) or from the
files extracted from it (checked against a `SHA256SUMS` the user keeps, else for format
only). Nothing is downloaded: the user places the files under `data/cifar10/`.

Every failure raises `DataError`, whose message names the file, what is wrong with it and
how to fix it.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from lottery.core.datasets import DataError
from lottery.data.checksums import CHECKSUMS_FILE, verify_files
from lottery.data.idx import Arrays, check_labels

#: CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # as published on the CIFAR page
CIFAR_BATCH_DIR = "cifar-10-batches-bin"
CIFAR_TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR_RECORD = 1 + 32 * 32 * 3  # a label byte, then 1024 red, 1024 green, 1024 blue bytes


def cifar_files() -> tuple[str, ...]:
    """The six files of the binary version, as named inside `cifar-10-batches-bin/`."""
    return (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)


def _cifar_placement(cifar_dir: Path) -> str:
    """How to put the official files under `cifar_dir` (the fix of a missing one)."""
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
    check_labels(y, source, fix)
    x = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _tar_member(tar: tarfile.TarFile, archive: Path, name: str) -> bytes:
    """The bytes of member `name` of the archive (DataError when it lacks it)."""
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
