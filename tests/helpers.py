"""Test helpers shared by test modules of several packages (no test module imports another).

The environment of an in-process stage or audit (`stage_env`, `audit`), tiny data files
in the official formats (IDX, CIFAR-10 binary), good and bad masks, the PNG check of the
figures, tiny `Params`, the engine reference's inputs, and reading a study's MLflow store
and files (`mlflow_client`, `all_runs`, `file_digests`, `wait_for`).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lottery.core import masks
from lottery.core.arch import LAYER_SHAPES, LAYERS, LENET, glorot_normal_init
from lottery.core.io import sha256_file
from lottery.core.masks import Mask, Weights
from lottery.core.params import Params, parse_params
from lottery.data.cifar import CIFAR_BATCH_DIR, CIFAR_TEST_FILE, cifar_files
from lottery.report import canvas
from tests.conftest import ROOT, base_env

# ---------------------------------------------------------------- stages and audit in-process


def stage_env(mp: pytest.MonkeyPatch, root: Path, **extra: str) -> None:
    """Give this process the environment a stage of the project at `root` sees
    (`conftest.run`): no MLflow or DVC settings of this process, DVC_ROOT naming the project
    (its local MLflow store unless `extra` names another), and `extra`. `mp` restores the
    environment (at the end of the test, or of its `MonkeyPatch.context()`)."""
    env = base_env({"DVC_ROOT": str(root), **extra})
    for key in os.environ.keys() - env.keys():
        mp.delenv(key)
    for key, value in env.items():
        mp.setenv(key, value)


R01 = "artifacts/ticket/r01/t0/next_mask.npz"  # m_2 of trial 0 (stage ticket@r01)


def audit(project: Path, target: str | None = None, repair: bool = False) -> tuple[int, Any]:
    """`lottery audit --json [target] [--repair]` in `project`, in-process: its exit status
    and its JSON (the command's own parsing and text output are tested through the CLI)."""
    from lottery.audit import main as lottery_audit

    with pytest.MonkeyPatch.context() as mp:
        stage_env(mp, project)
        result, _ = lottery_audit.audit(
            None if target is None else Path(target), Path("params.yaml"), project, repair
        )
    return (0 if result["ok"] else 1), json.loads(json.dumps(result))


def messages(result: dict[str, Any], path: str | None = None, check: str | None = None) -> str:
    return "\n".join(
        f"{p['path']} [{p['check']}] {p['message']}"
        for p in result["problems"]
        if (path is None or p["path"] == path) and (check is None or p["check"] == check)
    )


def tiny_params(**changes: dict[str, object]) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["study"].update(trials=2, rounds=2, name="test-study")
    raw["train"].update(iterations=30, eval_every=10)
    raw["controls"].update(random=True)
    for section, values in changes.items():
        raw[section].update(values)
    return parse_params(raw)


# ---------------------------------------------------------------- data files


def write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> Path:
    """Write a gzip IDX file: big-endian magic, uint32 dims, raw bytes."""
    header = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as fh:
        fh.write(header + payload)
    return path


def cifar_bytes(labels: np.ndarray, planes: np.ndarray) -> bytes:
    """Records in the official layout: a label byte, then the red, green and blue 32x32
    planes, each row-major. `planes` is (N, 3, 32, 32)."""
    out = bytearray()
    for label, image in zip(labels, planes, strict=True):
        out.append(int(label))
        for channel in range(3):
            out += image[channel].astype(np.uint8).tobytes(order="C")
    return bytes(out)


def tiny_cifar(
    seed: int = 0, per_file: int = 12, n_test: int = 10
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """file name -> (labels, planes (N, 3, 32, 32)) for the six files, random pixels."""
    rng = np.random.default_rng(seed)
    files = {}
    for name in cifar_files():
        n = n_test if name == CIFAR_TEST_FILE else per_file
        labels = (np.arange(n) + rng.integers(0, 10)) % 10
        files[name] = (labels.astype(np.uint8), rng.integers(0, 256, (n, 3, 32, 32), np.uint8))
    return files


def write_cifar_dir(root: Path, files: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    batch_dir = root / CIFAR_BATCH_DIR
    batch_dir.mkdir(parents=True)
    for name, (labels, planes) in files.items():
        (batch_dir / name).write_bytes(cifar_bytes(labels, planes))
    return root


# ---------------------------------------------------------------- masks and weights


def good_mask() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {layer: rng.random(shape) < 0.5 for layer, shape in LAYER_SHAPES.items()}


def bad_mask_arrays(case: str) -> dict[str, np.ndarray]:
    m: dict[str, np.ndarray] = dict(good_mask())
    if case == "shape":
        m["fc2"] = np.ones((300, 99), dtype=bool)
    elif case == "transposed":
        m["fc1"] = np.ones((300, 784), dtype=bool)
    elif case == "non_binary":
        m["fc1"] = m["fc1"].astype(np.float32) * 0.7
    elif case == "scores":
        m["out"] = np.full((100, 10), 2, dtype=np.int64)
    elif case == "other_arch":  # LeNet-5's fully connected part
        m = {
            "conv1": np.ones((5, 5, 1, 6), bool),
            "conv2": np.ones((5, 5, 6, 16), bool),
            "fc1": np.ones((400, 120), bool),
            "fc2": np.ones((120, 84), bool),
            "out": np.ones((84, 10), bool),
        }
    elif case == "other_input":  # LeNet-300-100 on CIFAR-10 inputs
        m["fc1"] = np.ones((3072, 300), dtype=bool)
    elif case == "strings":
        m["fc2"] = np.full((300, 100), "1")
    elif case == "pickled":
        m["fc1"] = np.array([{"evil": 1}] * 3, dtype=object)
    return m


def reference_inputs(ref: dict[str, Any]) -> tuple[list[Weights], list[Mask], list[int]]:
    """The engine reference's (tests/data/engine_reference.json) initial weights, masks
    and data seeds, from its config."""
    c = ref["config"]
    inits = [glorot_normal_init(np.random.default_rng(s), LENET) for s in c["init_seeds"]]
    masks = []
    for seed, dens in zip(c["mask_seeds"], c["mask_densities"], strict=True):
        rng = np.random.default_rng(seed)
        masks.append({layer: rng.random(LAYER_SHAPES[layer]) < dens for layer in LAYERS})
    return inits, masks, list(c["data_seeds"])


def new_cpu_hint(what: str) -> str:
    """What to do when this machine's CPU family has no bits recorded in the `what`
    reference (tests/data/WHAT_reference.json)."""
    from lottery.core.machine import describe

    return (
        f"this CPU ({describe()}) has no {what} bits recorded: if the other checks pass "
        f"(the arithmetic is unchanged, only the CPU family is new), record them with "
        f"`python -m tests.make_{what}_reference --add-cpu` and commit the file"
    )


def bits_of_this_cpu(
    variants: list[dict[str, Any]], matches: Callable[[dict[str, Any]], int], what: str
) -> dict[str, Any]:
    """The recorded bits (one entry of a reference's `by_cpu` list) a run on this machine
    must reproduce exactly: the entry recorded on this CPU family (`lottery.core.machine`),
    else the one whose bits `matches(entry)` most (the earliest entries were recorded
    before CPUs were). The float arithmetic XLA compiles depends on the CPU's vector
    extensions, so each family has its own bits; a family with none recorded that matches
    no entry fails with the command that records it."""
    from lottery.core.machine import describe

    for entry in variants:
        if entry["cpu"] == describe():
            return entry
    best = max(variants, key=matches)
    if not matches(best):
        pytest.fail(new_cpu_hint(what))
    return best


# ---------------------------------------------------------------- figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the 8-byte signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def assert_png(path: Path, figsize: tuple[float, float]) -> None:
    assert path.is_file()
    assert png_size(path) == (round(figsize[0] * canvas.DPI), round(figsize[1] * canvas.DPI))
    # Atomic writes leave no temporary siblings behind.
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- a study's store and files


def mlflow_client(uri: str) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def local_store(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def all_runs(client: Any) -> list[Any]:
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=5000)) if ids else []


def file_digests(project: Path) -> dict[str, str]:
    """SHA-256 of every metrics file and every mask/weights content hash, by path."""
    out: dict[str, str] = {}
    for path in sorted((project / "metrics").rglob("*.json")):
        out[str(path.relative_to(project))] = sha256_file(path)
    for path in sorted((project / "artifacts").rglob("*.npz")):
        rel = str(path.relative_to(project))
        if path.name in ("next_mask.npz", "mask.npz"):
            out[rel] = masks.mask_hash(masks.load_mask(path, arch=LENET), arch=LENET)
        elif rel.startswith(("artifacts/ticket", "artifacts/dense")):
            out[rel] = masks.weights_hash(masks.load_weights(path, arch=LENET), arch=LENET)
    return out


def wait_for(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"dvc repro ended ({proc.returncode}) before {needle!r}:\n{text}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {needle!r}")
