"""Checksums of the committed data files: parse a `sha256sum`-style `SHA256SUMS` and check
the files of a directory against it.

Every failure raises `DataError`, whose message names the file, what is wrong with it and
how to fix it (by default: check the committed directory out again).
"""

from __future__ import annotations

import re
from pathlib import Path

from lottery.core import io
from lottery.core.datasets import DataError

CHECKSUMS_FILE = "SHA256SUMS"

_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def restore_fix(path: Path) -> str:
    """The fix for a bad committed file: check its directory out again."""
    return f"restore the committed files with `git checkout -- {Path(path).parent}`"


def read_checksums(path: Path, fix: str | None = None) -> dict[str, str]:
    """Parse a `sha256sum`-style file: `<64 hex digits><space><space or *><file name>` per line.

    Returns file name -> lower-case hex digest. Blank lines and `#` comments are skipped.
    `fix` ends every error message (default: check the committed directory out again).
    """
    path = Path(path)
    fix = fix or restore_fix(path)
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


def verify_files(data_dir: Path, names: tuple[str, ...], fix: str | None = None) -> dict[str, str]:
    """Check the files `names` of `data_dir` against its `SHA256SUMS`; return file name ->
    sha256."""
    data_dir = Path(data_dir)
    sums_path = data_dir / CHECKSUMS_FILE
    fix = fix or restore_fix(sums_path)
    expected = read_checksums(sums_path, fix)
    found: dict[str, str] = {}
    for name in names:
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
