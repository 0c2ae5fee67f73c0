"""Masks and weights: validation, canonical hashes, density, `.npz` files.

A mask is `{layer: bool array of the kernel's shape}` for exactly the layers of an
`Architecture` (`conv` kernels (3, 3, c_in, c_out), `dense` (fan_in, fan_out)); weights are
`{"fc1/kernel": float32 array, "fc1/bias": ..., ...}` with the keys and shapes of its
`weight_shapes()`. Every function takes the architecture as a required `arch` (a forgotten
one is a type error, never a silent LeNet-300-100) and validates what it is given, so a mask
from another architecture or a half-binary array fails loudly, with the layer, the problem
and the fix in the message (`MaskError`).

Files are read with `allow_pickle=False`: an `.npz` that holds pickled (object) arrays is
refused, never unpickled.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from lottery.core import io
from lottery.core.arch import Architecture
from lottery.core.errors import UserError

Mask = dict[str, np.ndarray]
Weights = dict[str, np.ndarray]


class MaskError(UserError, ValueError):
    """A mask or weights object/file is invalid (the message names it, the problem, the fix)."""


# --------------------------------------------------------------------------- validation


def _check_keys(
    obj: object, expected: Iterable[str], source: str, what: str, arch: Architecture
) -> None:
    if not isinstance(obj, Mapping):
        raise MaskError(
            f"{source}: expected a mapping of {what} name -> array, got {type(obj).__name__}"
        )
    expected = list(expected)
    missing = [k for k in expected if k not in obj]
    unknown = sorted(str(k) for k in obj if k not in expected)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {what}s {missing}")
        if unknown:
            parts.append(f"unknown {what}s {unknown}")
        raise MaskError(
            f"{source}: {' and '.join(parts)}; {arch.describe()} expects exactly {expected}. "
            f"Is it from another architecture or an old run? Regenerate it with this code "
            f"(`dvc repro`)."
        )


def _shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def validate_mask(
    mask: Mapping[str, np.ndarray], source: str = "mask", *, arch: Architecture
) -> Mask:
    """Return a validated copy of `mask`: exactly the layers of `arch`, in forward order,
    each a C-contiguous bool array of the kernel's shape.

    Accepted values: bool arrays, or integer/float arrays whose values are exactly 0 or 1.
    Anything else (0.5, 2, NaN, objects, strings) raises MaskError.
    """
    _check_keys(mask, arch.names, source, "layer", arch)
    out: Mask = {}
    for layer, expected in arch.kernel_shapes.items():
        arr = np.asarray(mask[layer])
        if arr.shape != expected:
            raise MaskError(
                f"{source}: layer {layer!r} has shape {arr.shape}, expected {expected} "
                f"(kernel of {arch.describe()}); regenerate the mask with this code."
            )
        if arr.dtype == np.bool_:
            out[layer] = np.array(arr, dtype=bool, order="C", copy=True)
            continue
        if arr.dtype.kind not in "iuf":
            raise MaskError(
                f"{source}: layer {layer!r} has dtype {arr.dtype}; a mask must be bool "
                f"(or numbers that are exactly 0 or 1)."
            )
        binary = (arr == 0) | (arr == 1)
        if not binary.all():
            bad = int(np.flatnonzero(~binary.ravel())[0])
            raise MaskError(
                f"{source}: layer {layer!r} has non-binary values (e.g. {arr.ravel()[bad]!r} "
                f"at flat index {bad}); a mask holds only 0/1 (False/True). Was a weight or "
                f"score array saved in place of the mask?"
            )
        out[layer] = np.ascontiguousarray(arr == 1)
    return out


def validate_weights(
    weights: Mapping[str, np.ndarray], source: str = "weights", *, arch: Architecture
) -> Weights:
    """Return a validated float32 copy of `weights` (keys and shapes of
    `arch.weight_shapes()`, all values finite), keys in that order."""
    shapes = arch.weight_shapes()
    _check_keys(weights, shapes, source, "array", arch)
    out: Weights = {}
    for key, expected in shapes.items():
        arr = np.asarray(weights[key])
        if arr.shape != expected:
            raise MaskError(
                f"{source}: {key!r} has shape {arr.shape}, expected {expected} "
                f"({arch.describe()}); regenerate the weights with this code."
            )
        if arr.dtype.kind not in "iuf":
            raise MaskError(f"{source}: {key!r} has dtype {arr.dtype}; expected float32.")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            cast = np.array(arr, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(cast).all():
            n_bad = int((~np.isfinite(cast)).sum())
            raise MaskError(
                f"{source}: {key!r} has {n_bad} non-finite values (NaN/inf, or too large for "
                f"float32); training diverged or the file is corrupt: rerun the stage."
            )
        out[key] = cast
    return out


def ones_mask(arch: Architecture) -> Mask:
    """The dense mask m_0: every weight kept."""
    return {layer: np.ones(shape, dtype=bool) for layer, shape in arch.kernel_shapes.items()}


# --------------------------------------------------------------------------- hashing


def hash_bool_arrays(items: Iterable[tuple[str, np.ndarray]]) -> str:
    """SHA-256 hex of the canonical encoding of named bool arrays, in the order given.

    For each (name, array): `name.encode("utf-8") + b"\\0" + b"784x300" (the shape, dims
    joined by "x") + b"\\0" + np.packbits(array.ravel(order="C")).tobytes()`.
    """
    h = hashlib.sha256()
    for name, arr in items:
        a = np.asarray(arr, dtype=bool)
        h.update(name.encode("utf-8") + b"\0")
        h.update(_shape_str(a.shape).encode("ascii") + b"\0")
        h.update(np.packbits(a.ravel(order="C")).tobytes())
    return h.hexdigest()


def mask_hash(mask: Mapping[str, np.ndarray], *, arch: Architecture) -> str:
    """SHA-256 hex of a mask's canonical byte encoding (independent of file format).

    The mask is validated, then for each layer in forward order (fc1, fc2, out) the hash
    takes: the layer name in UTF-8, b"\\0", the shape as ASCII dims joined by "x"
    (b"784x300"), b"\\0", then `np.packbits` of the C-order flattened bool array (big bit
    order, the last byte zero-padded). So a mask saved as bool or as 0/1 integers, in any
    `.npz` (or none), hashes the same; one flipped bit changes the hash.
    """
    valid = validate_mask(mask, arch=arch)
    return hash_bool_arrays(valid.items())


def weights_hash(weights: Mapping[str, np.ndarray], *, arch: Architecture) -> str:
    """SHA-256 hex of weights' canonical encoding (independent of file format).

    The weights are validated and cast to float32; for each key in sorted order: the key
    in UTF-8, b"\\0", the shape as dims joined by "x", b"\\0", then the C-order
    little-endian float32 bytes.
    """
    valid = validate_weights(weights, arch=arch)
    h = hashlib.sha256()
    for key in sorted(valid):
        arr = valid[key]
        h.update(key.encode("utf-8") + b"\0")
        h.update(_shape_str(arr.shape).encode("ascii") + b"\0")
        h.update(arr.astype("<f4").tobytes(order="C"))
    return h.hexdigest()


# --------------------------------------------------------------------------- density


def density(mask: Mapping[str, np.ndarray], *, arch: Architecture) -> dict[str, float]:
    """Fraction of weights kept per layer, plus "overall" over all prunable weights
    (266,200 for LeNet-300-100)."""
    valid = validate_mask(mask, arch=arch)
    out = {layer: float(np.count_nonzero(m) / m.size) for layer, m in valid.items()}
    kept = sum(int(np.count_nonzero(m)) for m in valid.values())
    out["overall"] = float(kept / arch.n_prunable)
    return out


def kept_counts(mask: Mapping[str, np.ndarray], *, arch: Architecture) -> dict[str, int]:
    """Number of weights kept per layer, plus "overall"."""
    valid = validate_mask(mask, arch=arch)
    out = {layer: int(np.count_nonzero(m)) for layer, m in valid.items()}
    out["overall"] = sum(out.values())
    return out


def percent_remaining(mask: Mapping[str, np.ndarray], *, arch: Architecture) -> float:
    """100 * the overall density."""
    return 100.0 * density(mask, arch=arch)["overall"]


# --------------------------------------------------------------------------- files


def _load_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Read every array of an `.npz` with allow_pickle=False; MaskError on any problem."""
    path = Path(path)
    fix = f"regenerate it (`dvc repro`) or restore it (`dvc checkout --force {path}`)"
    if not path.is_file():
        raise MaskError(f"{path}: {what} file not found; {fix}.")
    if not zipfile.is_zipfile(path):
        raise MaskError(f"{path}: not an .npz archive (or truncated); {fix}.")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
                        raise MaskError(
                            f"{path}: array {key!r} holds pickled Python objects; refused "
                            f"(never loaded: unpickling can run arbitrary code). A {what} "
                            f"file holds only plain numeric arrays; {fix}."
                        ) from None
                    raise
    except MaskError:
        raise
    except Exception as exc:  # BadZipFile, CRC errors, EOF, malformed .npy headers, ...
        raise MaskError(f"{path}: cannot read the {what} file ({exc}); {fix}.") from None
    return arrays


def save_mask(path: Path, mask: Mapping[str, np.ndarray], *, arch: Architecture) -> None:
    """Validate and save a mask as an `.npz` of bool arrays named by layer (atomically)."""
    io.save_npz(path, validate_mask(mask, arch=arch))


def load_mask(path: Path, *, arch: Architecture) -> Mask:
    """Load and validate a mask `.npz` (allow_pickle=False)."""
    return validate_mask(_load_npz(Path(path), "mask"), source=str(path), arch=arch)


def save_weights(path: Path, weights: Mapping[str, np.ndarray], *, arch: Architecture) -> None:
    """Validate and save weights as an `.npz` of float32 arrays (atomically)."""
    io.save_npz(path, validate_weights(weights, arch=arch))


def load_weights(path: Path, *, arch: Architecture) -> Weights:
    """Load and validate a weights `.npz` (allow_pickle=False)."""
    return validate_weights(_load_npz(Path(path), "weights"), source=str(path), arch=arch)
