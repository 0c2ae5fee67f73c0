"""Bad masks and weights: `load_mask` and `load_weights` refuse wrong shapes, values, dtypes,
layers and pickled payloads, naming the file; nothing in lottery/ or stages/ can unpickle."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lottery.core import masks
from lottery.core.arch import LENET, weight_shapes
from lottery.core.masks import MaskError
from tests.conftest import ROOT
from tests.helpers import bad_mask_arrays, good_mask


def good_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in weight_shapes().items()}


MASK_CASES = {
    "shape": "layer 'fc2' has shape (300, 99), expected (300, 100)",
    "transposed": "layer 'fc1' has shape (300, 784), expected (784, 300)",
    "non_binary": "layer 'fc1' has non-binary values",
    "scores": "layer 'out' has non-binary values",
    "other_arch": "unknown layers ['conv1', 'conv2']",
    "other_input": "layer 'fc1' has shape (3072, 300)",
    "strings": "layer 'fc2' has dtype <U1",
    "pickled": "holds pickled Python objects; refused",
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_load_mask_refuses(tmp_path: Path, case: str) -> None:
    path = tmp_path / "mask.npz"
    np.savez(path, **bad_mask_arrays(case))  # type: ignore[arg-type]
    with pytest.raises(MaskError) as info:
        masks.load_mask(path, arch=LENET)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert MASK_CASES[case] in msg, msg


class Boom:
    """Unpickling this would run code: the test fails if it ever happens."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path("/nonexistent-should-never-be-called").write_text, ("pwned",))


def test_pickled_payload_is_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "mask.npz"
    arrays: dict[str, Any] = dict(good_mask())
    arrays["fc2"] = np.array([Boom()], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(MaskError, match="pickled"):
        masks.load_mask(path, arch=LENET)
    with pytest.raises(MaskError, match="pickled"):
        masks.load_weights(path, arch=LENET)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("shape", "'fc1/kernel' has shape (784, 299)"),
        ("nan", "non-finite values"),
        ("missing", "missing arrays ['out/bias']"),
        ("pickled", "pickled Python objects"),
        ("not_npz", "not an .npz archive"),
        ("truncated", "not an .npz archive (or truncated)"),
    ],
)
def test_load_weights_refuses(tmp_path: Path, case: str, expected: str) -> None:
    path = tmp_path / "weights.npz"
    w: dict[str, Any] = dict(good_weights())
    if case == "shape":
        w["fc1/kernel"] = np.zeros((784, 299), np.float32)
    elif case == "nan":
        w["fc2/kernel"][0, 0] = np.nan
    elif case == "missing":
        del w["out/bias"]
    elif case == "pickled":
        w["out/bias"] = np.array([object()], dtype=object)
    np.savez(path, **w)
    if case == "not_npz":
        path.write_text("this is not a zip archive\n")
    elif case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MaskError, match=re.escape(expected)) as info:
        masks.load_weights(path, arch=LENET)
    assert str(path) in str(info.value)


def test_no_code_path_loads_pickles_or_unsafe_models() -> None:
    """Weights are plain `.npz` (never Keras model files); nothing may unpickle.

    Looks at every Python file of lottery/ and stages/ for what ruff's bandit rules do not
    see (`pickle.load` and `yaml.load` are theirs, S301 and S506): `np.load` always with
    allow_pickle=False, and no joblib/cloudpickle/dill, no Keras `load_model` (with
    safe_mode=False or at all: the project has no model files), no unsafe YAML loader.
    """
    forbidden = [
        r"allow_pickle\s*=\s*True",
        r"safe_mode\s*=\s*False",
        r"\bload_model\s*\(",
        r"\bjoblib\.load\s*\(",
        r"\bcloudpickle\b",
        r"\bdill\b",
        r"yaml\.unsafe_load|yaml\.full_load",
    ]
    sources = sorted((ROOT / "lottery").rglob("*.py")) + sorted((ROOT / "stages").rglob("*.py"))
    assert len(sources) > 5
    np_loads = 0
    for path in sources:
        text = path.read_text()
        for pattern in forbidden:
            assert not re.search(pattern, text), f"{path}: matches {pattern}"
        for call in re.finditer(r"np\.load\(([^)]*)\)", text):
            np_loads += 1
            assert "allow_pickle=False" in call.group(1), f"{path}: {call.group(0)}"
    assert np_loads >= 1  # masks._load_npz
