"""Reliability: bad data, bad masks and weights, a killed stage, parallel experiments on one
MLflow server, a DVC remote round trip, and what the project exposes (hosts, home paths,
secrets).

Real pipeline runs here (the budget is three): the session `tiny_study`, the interrupted
and resumed copy of it, and the four queued experiments. Everything else is in-process
or runs single stage scripts.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lottery.core import masks
from lottery.core.arch import LAYER_SHAPES, weight_shapes
from lottery.core.io import sha256_file
from lottery.core.masks import MaskError
from tests.conftest import (
    ROOT,
    MlflowServer,
    base_env,
    copy_study,
    make_project,
    ran_stages,
    run,
    write_params,
)

MNIST = Path("data/mnist")
TEST_LABELS = MNIST / "t10k-labels-idx1-ubyte.gz"
TEST_IMAGES = MNIST / "t10k-images-idx3-ubyte.gz"
TRAIN_LABELS = MNIST / "train-labels-idx1-ubyte.gz"

# Built from parts so that this file itself never matches what it looks for.
HOME_PATTERNS = ("/" + "root" + "/", "/" + "home" + "/")
SECRET_WORDS = ("pass" + "word", "tok" + "en", "sec" + "ret")


def mlflow_client(uri: str) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def local_store(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def all_runs(client: Any) -> list[Any]:
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=5000)) if ids else []


# ====================================================================== bad data (stage level)


@pytest.fixture(scope="module")
def bare_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with tiny params in a git repo, never run."""
    return make_project(tmp_path_factory.mktemp("bare") / "project")


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


# ====================================================================== bad masks and weights


def good_mask() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {layer: rng.random(shape) < 0.5 for layer, shape in LAYER_SHAPES.items()}


def good_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in weight_shapes().items()}


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
        masks.load_mask(path)
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
        masks.load_mask(path)
    with pytest.raises(MaskError, match="pickled"):
        masks.load_weights(path)


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
        masks.load_weights(path)
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


def test_train_stage_refuses_a_bad_mask(tiny_study: Path, tmp_path: Path) -> None:
    """A replaced m_2 (round r02's input mask) stops `python stages/train.py ticket r02`."""
    project = copy_study(tiny_study, tmp_path / "study")
    target = project / "artifacts" / "ticket" / "r01" / "t1" / "next_mask.npz"
    metrics = project / "metrics" / "ticket" / "r02.json"
    before = metrics.read_bytes()
    runs_before = len(all_runs(mlflow_client(local_store(project))))
    for case, expected in [
        ("pickled", "holds pickled Python objects; refused"),
        ("other_arch", "unknown layers ['conv1', 'conv2']"),
    ]:
        target.unlink()  # the file may be a link into the DVC cache: never write through it
        np.savez(target, **bad_mask_arrays(case))  # type: ignore[arg-type]
        proc = run(
            project, sys.executable, "stages/train.py", "ticket", "r02", check=False, timeout=600
        )
        assert proc.returncode == 2, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: artifacts/ticket/r01/t1/next_mask.npz"), proc.stderr
        assert expected in last and "Traceback" not in proc.stderr, proc.stderr
    assert metrics.read_bytes() == before  # nothing written, nothing trained
    assert len(all_runs(mlflow_client(local_store(project)))) == runs_before
    assert "ticket@r02" in run(project, "dvc", "status").stdout  # DVC sees the changed input


# ====================================================================== interruption


def file_digests(project: Path) -> dict[str, str]:
    """SHA-256 of every metrics file and every mask/weights content hash, by path."""
    out: dict[str, str] = {}
    for path in sorted((project / "metrics").rglob("*.json")):
        out[str(path.relative_to(project))] = sha256_file(path)
    for path in sorted((project / "artifacts").rglob("*.npz")):
        rel = str(path.relative_to(project))
        if path.name in ("next_mask.npz", "mask.npz"):
            out[rel] = masks.mask_hash(masks.load_mask(path))
        elif rel.startswith(("artifacts/ticket", "artifacts/dense")):
            out[rel] = masks.weights_hash(masks.load_weights(path))
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


def test_killed_stage_resumes_bit_identical(tiny_study: Path, tmp_path: Path) -> None:
    project = copy_study(tiny_study, tmp_path / "study")
    # One trial of each stage, long enough to be killed mid-training.
    write_params(
        project,
        {
            "study": {"rounds": 1},
            "controls": {"reinit": False, "random": False},
            # 15 evaluations (most of a stage's time): the first progress line comes
            # after the first, so the kill lands with 14 evaluations and 1,400 iterations
            # still to go.
            "train": {"iterations": 1500, "eval_every": 100},
        },
    )
    lock_before = (project / "dvc.lock").read_text()
    client = mlflow_client(local_store(project))
    runs_before = {r.info.run_id for r in all_runs(client)}
    log = tmp_path / "repro1.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["dvc", "repro"],
            cwd=project,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: dvc and the stage it runs
        )
        try:
            # the engine's first progress line: the MLflow child runs exist, training is on
            wait_for(log, "[dense] ", proc, timeout=600)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_log = log.read_text(errors="replace")
    assert "Running stage 'dense'" in killed_log and "dense: early stop" not in killed_log

    # Nothing of the killed attempt counts as done: dvc.lock is untouched, dense is dirty.
    assert (project / "dvc.lock").read_text() == lock_before
    status = run(project, "dvc", "status").stdout
    assert "dense:" in status, status
    lock_files = {name: (project / ".dvc" / "tmp" / name).exists() for name in ("rwlock", "lock")}
    killed = [
        r
        for r in all_runs(client)
        if r.info.run_id not in runs_before and r.data.tags.get("lottery.dvc_stage") == "dense"
    ]
    assert len(killed) == 2, [r.info.run_id for r in killed]  # one per trial
    # The stage's watchdog (its own session: the kill of dvc's process group missed it)
    # marks the killed attempt's runs FAILED, before any later command runs.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = [client.get_run(r.info.run_id) for r in killed]
        if all(r.info.status == "FAILED" for r in now):
            break
        time.sleep(0.5)
    for r in now:
        assert r.info.status == "FAILED", r.info
        reason = r.data.tags.get("lottery.failure", "")
        assert reason.startswith("killed: its stage process (pid "), reason
        assert reason.endswith("marked FAILED by its watchdog"), reason

    # Resuming is rerunning the killed stage (`dvc repro` would go on to the stages after
    # it; only the killed one is under test here).
    second = run(project, "dvc", "repro", "dense", timeout=1800)
    out2 = second.stdout + second.stderr
    assert ran_stages(out2) == ["dense"], out2
    (tmp_path / "repro2.log").write_text(out2)
    running = killed
    # Every output is complete: no temp files of the killed writes, lineage points at
    # FINISHED runs of the second attempt.
    leftovers = [p for p in (project / "artifacts").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    killed_ids = {r.info.run_id for r in running}
    for t in (0, 1):
        lineage = json.loads((project / f"artifacts/ticket/r00/t{t}/next_mask.json").read_text())
        assert lineage["mlflow_run_id"] not in killed_ids
        assert client.get_run(lineage["mlflow_run_id"]).info.status == "FINISHED"
    assert json.loads(run(project, "dvc", "status", "dense", "--json").stdout) == {}

    # Bit-identical to an uninterrupted run of the killed stage with the same inputs.
    resumed = file_digests(project)
    forced = run(project, "dvc", "repro", "-f", "-s", "dense", timeout=1800)
    assert ran_stages(forced.stdout) == ["dense"]
    again = file_digests(project)
    dense_keys = [k for k in resumed if "/r00" in k or "artifacts/dense" in k]
    assert len(dense_keys) >= 8, dense_keys
    assert {k: again[k] for k in dense_keys} == {k: resumed[k] for k in dense_keys}
    assert again == resumed
    # What DVC leaves after SIGKILL (documented in docs/scaling.md): the lock files stay
    # on disk but are not held; the second `dvc repro` went ahead without intervention.
    print(f"lock files after SIGKILL: {lock_files}")
    if "had been killed. Auto removed it from the lock file" in out2:
        print("DVC removed the killed process's rwlock entry automatically")


# ====================================================================== parallel experiments


SMALL: dict[str, Any] = {
    "study": {"trials": 1, "rounds": 1, "name": "queue"},  # the shared server's own experiment
    "controls": {"reinit": False, "random": False},
    "train": {"iterations": 20, "eval_every": 10},
}
#: Two experiments on two queue workers: both run at once against the one server.
RATES = ["0.001", "0.002"]


def test_parallel_queue_against_one_mlflow_server(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    uri, server_log = mlflow_server.url, mlflow_server.log
    env = {"MLFLOW_TRACKING_URI": uri}
    project = make_project(tmp_path / "exp", SMALL)
    # The data split and θ0 do not depend on the learning rate: prepared once here and
    # committed, the experiments restore them from the shared DVC cache and run the stages
    # that train and record (dense, ticket@r01, visualise, report) at the same time.
    prepared = run(project, "dvc", "repro", "prepare", "init", env=env)
    assert sorted(ran_stages(prepared.stdout)) == ["init", "prepare"], prepared.stdout
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "data split and θ0")
    for lr in RATES:
        run(project, "dvc", "exp", "run", "--queue", "-S", f"train.learning_rate={lr}", env=env)
    try:
        run(project, "dvc", "queue", "start", "-j", "2", env=env)
        deadline = time.monotonic() + 1800
        while True:
            status = run(project, "dvc", "queue", "status", env=env).stdout
            if not re.search(r"\b(Queued|Running)\b", status):
                break
            assert time.monotonic() < deadline, status
            time.sleep(2)  # each `dvc queue status` takes a second or two itself
        names = re.findall(r"^\S+\s+(\S+)\s+.*\b(Success|Failed)\b", status, flags=re.M)
        logs = "".join(
            run(project, "dvc", "queue", "logs", name, env=env, check=False).stdout
            for name, _ in names
        )
        assert status.count("Success") == len(RATES) and "Failed" not in status, status + logs
    finally:
        run(project, "dvc", "queue", "stop", "--kill", env=env, check=False)
    shown = run(project, "dvc", "exp", "show", "--csv", env=env).stdout
    for lr in RATES:
        assert re.search(rf",{re.escape(lr)}(,|$)", shown, flags=re.M), shown
    assert "database is locked" not in logs + server_log.read_text()
    assert not (project / "mlflow.db").exists()  # everything went to the server

    client = mlflow_client(uri)
    study = yaml.safe_load((project / "params.yaml").read_text())["study"]["name"]
    exp = client.get_experiment_by_name(study)
    assert exp is not None
    runs = list(client.search_runs([exp.experiment_id], max_results=1000))
    parents = [r for r in runs if r.data.tags.get("lottery.kind") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len({r.data.tags["lottery.study_hash"] for r in parents}) == len(RATES)
    by_lr: dict[str, list[Any]] = {}
    for r in children:
        by_lr.setdefault(r.data.params["train.learning_rate"], []).append(r)
    assert sorted(by_lr) == sorted(str(float(lr)) for lr in RATES), sorted(by_lr)
    for lr, rs in by_lr.items():
        stages = sorted(r.data.tags["lottery.dvc_stage"] for r in rs if r.info.status == "FINISHED")
        assert stages == ["dense", "ticket@r01"], (lr, stages)
        for r in rs:
            assert r.data.tags.get("lottery.dvc_exp_name"), r.data.tags
            top = {a.path for a in client.list_artifacts(r.info.run_id)}
            assert {"mask", "weights", "curves"} <= top, top
            mask_files = {a.path for a in client.list_artifacts(r.info.run_id, "mask")}
            assert "mask/next_mask.npz" in mask_files, mask_files
            assert "mlflow-artifacts:" in r.info.artifact_uri  # served by the server


# ====================================================================== DVC remote


def test_remote_push_clone_pull_reruns_nothing(tiny_study: Path, tmp_path: Path) -> None:
    origin = copy_study(tiny_study, tmp_path / "origin")
    remote = tmp_path / "remote"
    run(origin, "dvc", "remote", "add", "-d", "shared", str(remote))
    (origin / "repro.log").unlink(missing_ok=True)
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-q", "-m", "tiny study results")
    pushed = run(origin, "dvc", "push")
    assert "pushed" in pushed.stdout, pushed.stdout
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(origin), str(clone)], check=True, env=base_env(), timeout=300
    )
    # Git carries only DVC's .gitignore files under artifacts/; the data comes from the remote.
    assert not [
        p for p in (clone / "artifacts").rglob("*") if p.is_file() and p.name != ".gitignore"
    ]
    run(clone, "dvc", "pull")
    assert (clone / "artifacts" / "ticket" / "r02" / "t1" / "next_mask.npz").is_file()
    status = run(clone, "dvc", "status").stdout
    assert "up to date" in status, status
    repro = run(clone, "dvc", "repro")
    assert ran_stages(repro.stdout) == [] and "Running stage" not in repro.stdout, repro.stdout
    assert not (clone / "mlflow.db").exists()  # nothing ran, nothing recorded
    assert file_digests(clone) == file_digests(origin)


# ====================================================================== exposure


def mlflow_server_commands(text: str) -> list[str]:
    """Each `mlflow server ...` command in a text, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [m.group(0) for m in re.finditer(r"mlflow server(?:[ \t]+-[^\n`]*)?", joined)]


def test_every_documented_mlflow_server_binds_to_localhost() -> None:
    places = [ROOT / "README.md", ROOT / "docs", ROOT / "scripts", ROOT / "lottery"]
    files: list[Path] = []
    for place in places:
        if place.is_file():
            files.append(place)
        elif place.is_dir():
            files += [p for p in place.rglob("*") if p.is_file() and p.suffix != ".pyc"]
    commands: list[tuple[Path, str]] = []
    for path in files:
        for cmd in mlflow_server_commands(path.read_text(errors="replace")):
            commands.append((path, cmd))
    assert any(p.name == "scaling.md" for p, _ in commands), "docs/scaling.md shows no server"
    for path, cmd in commands:
        assert "0.0.0.0" not in cmd and "--host ::" not in cmd, f"{path}: {cmd}"
        if re.search(r"\s-", cmd):  # a command with options: it must name the host
            assert re.search(r"(--host|-h)[ =]127\.0\.0\.1\b", cmd), f"{path}: {cmd}"


def test_no_home_paths_or_secrets(tiny_study: Path) -> None:
    home = str(Path.home()).rstrip("/") + "/"
    patterns = (*HOME_PATTERNS, home) if home != "/" else HOME_PATTERNS
    committed = run(ROOT, "git", "ls-files").stdout.split()
    texts: dict[str, str] = {}
    for rel in committed:
        path = ROOT / rel
        if path.is_file() and path.stat().st_size < 2_000_000 and not rel.endswith(".gz"):
            texts[f"repo:{rel}"] = path.read_text(errors="replace")
    for rel in ["params.yaml", "dvc.lock", *run(tiny_study, "git", "ls-files").stdout.split()]:
        path = tiny_study / rel
        if path.is_file() and not rel.endswith(".gz"):
            texts[f"study:{rel}"] = path.read_text(errors="replace")
    for path in sorted((tiny_study / "artifacts").rglob("*.json")) + sorted(
        (tiny_study / "metrics").rglob("*.json")
    ):
        texts[f"study:{path.relative_to(tiny_study)}"] = path.read_text()
    for name, text in texts.items():
        for pattern in patterns:
            assert pattern not in text, f"{name} contains {pattern!r}"

    client = mlflow_client(local_store(tiny_study))
    runs = all_runs(client)
    assert runs
    for r in runs:
        for kind, items in (("tag", r.data.tags), ("param", r.data.params)):
            for key, value in items.items():
                where = f"run {r.info.run_id} {kind} {key}={value!r}"
                for pattern in patterns:
                    assert pattern not in value, where
                for word in SECRET_WORDS:
                    assert word not in key.lower() and word not in value.lower(), where
    params_text = (tiny_study / "params.yaml").read_text().lower()
    for word in SECRET_WORDS:
        assert word not in params_text


# ====================================================================== entry points


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh tiny project in its own git repo (never run): for commands that edit it."""
    return make_project(tmp_path / "project")


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def test_new_files_honour_the_umask_and_rewritten_files_keep_their_mode(tmp_path: Path) -> None:
    from lottery.core import io

    old = os.umask(0o027)
    try:
        io.write_text(tmp_path / "new.txt", "x")
        io.write_json(tmp_path / "sub" / "new.json", {"a": 1})
        io.save_npz(tmp_path / "new.npz", {"a": np.zeros(3)})
        for name in ("new.txt", "sub/new.json", "new.npz"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
        os.umask(0o022)
        io.write_text(tmp_path / "other.txt", "x")
        assert (tmp_path / "other.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "tracked.yaml").write_text("a: 1\n")
        os.chmod(tmp_path / "tracked.yaml", 0o664)
        io.write_text(tmp_path / "tracked.yaml", "a: 2\n")  # an existing file keeps its mode
        assert (tmp_path / "tracked.yaml").stat().st_mode & 0o777 == 0o664
        assert (tmp_path / "tracked.yaml").read_text() == "a: 2\n"
    finally:
        os.umask(old)


def test_lottery_rounds_keeps_params_yaml_mode_and_git_sees_no_mode_change(
    project: Path,
) -> None:
    params = project / "params.yaml"
    assert params.stat().st_mode & 0o777 == 0o644
    run(project, "lottery", "rounds", "3")
    assert params.stat().st_mode & 0o777 == 0o644
    assert "rounds: 3" in params.read_text()
    diff = run(project, "git", "diff", "--summary").stdout
    assert "mode change" not in diff, diff


def test_stage_outputs_honour_the_umask(tiny_study: Path) -> None:
    """Everything the pipeline wrote under umask 022 (the tests' default) is 644."""
    assert os.umask(os.umask(0o022)) == 0o022
    written = [
        *(tiny_study / "metrics").rglob("*.json"),
        *(tiny_study / "reports").rglob("*.*"),
        *(tiny_study / "mlruns").rglob("*.npz"),
    ]
    assert len(written) > 20
    owner_only = [str(p) for p in written if p.is_file() and p.stat().st_mode & 0o044 != 0o044]
    assert owner_only == []


def test_params_yaml_is_read_as_dvc_reads_it(tmp_path: Path) -> None:
    """YAML 1.2 (DVC's ruamel): `1e-3` is a number; PyYAML's YAML 1.1 makes it a string."""
    from dvc.utils.serialize import parse_yaml

    from lottery.core.params import load_params, read_yaml

    text = (
        (ROOT / "params.yaml").read_text().replace("learning_rate: 0.0012", "learning_rate: 1e-3")
    )
    assert "learning_rate: 1e-3" in text
    (tmp_path / "params.yaml").write_text(text)
    assert yaml.safe_load(text)["train"]["learning_rate"] == "1e-3"  # the old reading
    assert load_params(tmp_path / "params.yaml").train.learning_rate == 0.001
    tricky = "a: 1e-3\nb: yes\nc: 0o17\nd: 017\ne: .5\nf: 1_000\ng: on\nh: 1:20\n"
    assert read_yaml(tricky) == parse_yaml(tricky, "params.yaml")
    full = (ROOT / "params.yaml").read_text()
    assert read_yaml(full) == parse_yaml(full, "params.yaml")


STAGE_SCRIPTS = [
    ["stages/prepare.py"],
    ["stages/init.py"],
    ["stages/train.py", "ticket", "r00"],
    ["stages/train.py", "reinit", "r01"],
    ["stages/visualise.py"],
    ["stages/report.py"],
]


def test_every_entry_point_refuses_an_unknown_section(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text() + "\noptimizer:\n  momentum: 0.9\n")
    commands = [[sys.executable, *s] for s in STAGE_SCRIPTS]
    commands += [["lottery", "rounds", "3"], ["lottery", "audit"]]
    for cmd in commands:
        proc = run(project, *cmd, check=False, timeout=300)
        assert proc.returncode == 2, (cmd, proc.stderr)
        line = proc.stderr.strip()
        assert "\n" not in line, (cmd, proc.stderr)
        assert line.startswith("error: ") and "unknown key optimizer" in line, (cmd, line)
        assert "sections are study, data, model, train, prune, controls" in line, line
    assert not (project / "artifacts").exists() and not (project / "metrics").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ticket", "rXX"], "usage: python stages/train.py {ticket,reinit,random} rNN"),
        (["pruned", "r01"], "usage: python stages/train.py"),
        (["ticket"], "usage: python stages/train.py"),
        (["reinit", "r00"], "no stage reinit@r00 (controls start at round 1"),
        (["ticket", "r07"], "so its ticket stages are r00 to r02. For more rounds run `lottery"),
        (["random", "r03"], "no stage random@r03: the random stages are r01, r02"),
    ],
)
def test_train_stage_refuses_stages_dvc_yaml_lacks(
    bare_project: Path, args: list[str], expected: str
) -> None:
    proc = run(bare_project, sys.executable, "stages/train.py", *args, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert not (bare_project / "artifacts").exists()


def test_cli_finds_the_project_from_a_subdirectory(
    project: Path, tiny_study: Path, tmp_path: Path
) -> None:
    sub = project / "docs" / "deep"
    sub.mkdir(parents=True)
    run(sub, "lottery", "rounds", "3")
    assert "rounds: 3" in (project / "params.yaml").read_text()
    assert not (sub / "params.yaml").exists()
    run(project, "git", "commit", "-qam", "3 rounds")
    proc = run(sub, "lottery", "preset", "paper")
    assert (project / "params.yaml").read_bytes() == (project / "presets/paper.yaml").read_bytes()
    assert "now holds preset 'paper'" in proc.stdout
    # --params is relative to where the user stands; the store and files to the project.
    reports = tiny_study / "reports"  # an existing subdirectory: nothing is written there
    proc = run(reports, "lottery", "audit", "--json", "--params", "../params.yaml", check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, result["problems"]
    assert result["root"] == str(tiny_study) and result["problems"] == []
    assert str(tiny_study / "mlflow.db") in result["tracking_uri"]
    elsewhere = tmp_path / "elsewhere"  # no project at or above it
    elsewhere.mkdir()
    outside = run(elsewhere, "lottery", "rounds", check=False)
    assert outside.returncode == 2 and "is not inside a lottery project" in outside.stderr


def test_preset_keeps_edits_unless_forced(project: Path) -> None:
    params = project / "params.yaml"
    edited = params.read_text().replace("seed: 0", "seed: 7")
    assert edited != params.read_text()
    params.write_text(edited)
    proc = run(project, "lottery", "preset", "paper", check=False)
    assert proc.returncode == 2
    assert "has edits not committed to git" in proc.stderr and "--force" in proc.stderr
    assert proc.stderr.count("\n") == 1 and params.read_text() == edited
    proc = run(project, "lottery", "preset", "paper", "--force")
    assert "your version is kept in" in proc.stdout
    assert (project / "params.yaml.bak").read_text() == edited
    assert params.read_bytes() == (project / "presets/paper.yaml").read_bytes()
    assert params.stat().st_mode & 0o777 == 0o644
    # What git holds is never lost: a committed params.yaml is replaced without --force.
    run(project, "git", "checkout", "-q", "params.yaml")
    run(project, "lottery", "preset", "paper")


def test_closed_pipe_ends_quietly_with_141(tiny_study: Path) -> None:
    """`lottery audit --json | head -c 0`: the reader is gone before the audit prints."""
    proc = subprocess.Popen(
        ["lottery", "audit", "--json"],
        cwd=tiny_study,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader exits at once
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 141, err
    assert err == "", err  # like git or cat: no traceback, no "Exception ignored"


def test_ctrl_c_during_training_exits_130_and_marks_runs_interrupted(
    tiny_study: Path, tmp_path: Path
) -> None:
    project = copy_study(tiny_study, tmp_path / "study")
    write_params(project, {"train": {"iterations": 3000, "eval_every": 100, "test_every": 500}})
    client = mlflow_client(local_store(project))
    before = {r.info.run_id for r in all_runs(client)}
    log = tmp_path / "stage.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "stages/train.py", "ticket", "r01"],
            cwd=project,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the whole foreground group
        )
        try:
            wait_for(log, "[ticket@r01] iteration", proc, timeout=600)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text(errors="replace")
    assert code == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert last_line(text).startswith("interrupted: the stage stopped by Ctrl-C"), text[-2000:]
    assert "2 MLflow run(s) marked FAILED (interrupted)" in last_line(text)
    new = [
        client.get_run(r.info.run_id)
        for r in all_runs(client)
        if r.info.run_id not in before and r.data.tags.get("lottery.kind") != "study"
    ]
    assert len(new) == 2  # one per trial (the new params made a new, FINISHED study run)
    for r in new:
        assert r.info.status == "FAILED"
        assert r.data.tags["lottery.failure"] == "interrupted"
    assert (project / "metrics/ticket/r01.json").read_bytes() == (
        tiny_study / "metrics/ticket/r01.json"
    ).read_bytes()


def test_sigterm_exits_143(bare_project: Path) -> None:
    """SIGTERM (a queue worker stopped, `kill`): one line, 143, after the stage's cleanup."""
    code = (
        "import sys, time\n"
        "from lottery.study.entry import stage_main\n"
        "def stage(params):\n"
        "    try:\n"
        "        print('ready', file=sys.stderr, flush=True)\n"
        "        time.sleep(120)\n"
        "    finally:\n"
        "        print('cleaned up', file=sys.stderr, flush=True)\n"
        "stage_main(stage)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=bare_project,
        env=base_env({"PYTHONPATH": str(bare_project)}),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stderr.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err == "cleaned up\nterminated: the stage stopped by SIGTERM.\n", err
