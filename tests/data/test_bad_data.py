"""Bad MNIST files at stage level: `python stages/prepare.py` refuses a truncated file, a
stale or wrong checksum, a wrong IDX magic number, image shape or label, in one `error:`
line, and writes nothing."""

from __future__ import annotations

import gzip
import shutil
import struct
import sys
from pathlib import Path

import pytest

from lottery.core.io import sha256_file
from tests.conftest import run

MNIST = Path("data/mnist")
TEST_LABELS = MNIST / "t10k-labels-idx1-ubyte.gz"
TEST_IMAGES = MNIST / "t10k-images-idx3-ubyte.gz"
TRAIN_LABELS = MNIST / "train-labels-idx1-ubyte.gz"


def gz_payload(path: Path) -> bytes:
    with gzip.open(path, "rb") as fh:
        return fh.read()


def write_gz(path: Path, payload: bytes) -> None:
    path.unlink()  # never write through a link into a cache
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))


def refresh_checksum(project: Path, rel: Path) -> None:
    """Record the corrupted file's hash, as if someone regenerated SHA256SUMS."""
    sums = project / MNIST / "SHA256SUMS"
    lines = []
    for line in sums.read_text().splitlines():
        if line.strip().endswith(rel.name):
            line = f"{sha256_file(project / rel)}  {rel.name}"
        lines.append(line)
    sums.unlink()
    sums.write_text("\n".join(lines) + "\n")


def corrupt_truncated(project: Path, fix_sum: bool) -> Path:
    path = project / TEST_LABELS
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])
    if fix_sum:
        refresh_checksum(project, TEST_LABELS)
    return TEST_LABELS


def corrupt_flipped_byte(project: Path) -> Path:
    path = project / TRAIN_LABELS
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.unlink()
    path.write_bytes(bytes(data))
    return TRAIN_LABELS


def corrupt_magic(project: Path) -> Path:
    raw = bytearray(gz_payload(project / TEST_LABELS))
    raw[:4] = struct.pack(">I", 0x00000803)  # the images magic in a labels file
    write_gz(project / TEST_LABELS, bytes(raw))
    refresh_checksum(project, TEST_LABELS)
    return TEST_LABELS


def corrupt_shape(project: Path) -> Path:
    raw = bytearray(gz_payload(project / TEST_IMAGES))
    raw[8:16] = struct.pack(">II", 27, 29)
    write_gz(project / TEST_IMAGES, bytes(raw))
    refresh_checksum(project, TEST_IMAGES)
    return TEST_IMAGES


def corrupt_label(project: Path) -> Path:
    raw = bytearray(gz_payload(project / TEST_LABELS))
    raw[8 + 123] = 10
    write_gz(project / TEST_LABELS, bytes(raw))
    refresh_checksum(project, TEST_LABELS)
    return TEST_LABELS


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("truncated", "gzip stream is truncated"),
        ("truncated_stale_sum", "SHA-256 is"),
        ("checksum", "SHA-256 is"),
        ("magic", "IDX magic number is 0x00000803"),
        ("shape", "images are 27x29, expected 28x28"),
        ("label", "label 10 at index 123"),
    ],
)
def test_prepare_stage_refuses_bad_data(
    bare_project: Path, tmp_path: Path, case: str, expected: str
) -> None:
    project = tmp_path / "p"
    shutil.copytree(bare_project, project, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    corrupt = {
        "truncated": lambda p: corrupt_truncated(p, fix_sum=True),
        "truncated_stale_sum": lambda p: corrupt_truncated(p, fix_sum=False),
        "checksum": corrupt_flipped_byte,
        "magic": corrupt_magic,
        "shape": corrupt_shape,
        "label": corrupt_label,
    }[case]
    bad = corrupt(project)
    proc = run(project, sys.executable, "stages/prepare.py", check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert err.startswith(f"error: {bad}: "), err
    assert expected in err and "Traceback" not in err, err
    assert err.rstrip("\n").count("\n") == 0, err
    assert not (project / "artifacts" / "data" / "split.npz").exists()
    assert not (project / "artifacts" / "data" / "manifest.json").exists()
