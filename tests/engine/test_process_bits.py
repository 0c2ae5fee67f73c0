"""What a training process's bits do not depend on: XLA's persistent compilation cache
(`lottery.engine.compile_cache`: a program loaded from it computes bit for bit what a fresh
compile computes; a damaged entry is compiled again and replaced; one folder per machine,
TensorFlow and XLA_FLAGS) and the cores the process may use (`lottery.core.machine.threads`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lottery.data.prepare import prepare
from lottery.engine import compile_cache
from lottery.engine.compile_cache import complete, enable, machine_key, root

ROOT = Path(__file__).resolve().parents[2]

#: Three LeNets trained 20 iterations on real MNIST (1,000 validation and test examples);
#: prints their weights' hashes.
TRAIN = """
import sys
from pathlib import Path
import numpy as np
from lottery.core.arch import LAYER_SHAPES, LAYERS, LENET, glorot_normal_init
from lottery.core.masks import weights_hash
from lottery.data.split import Split, load_split
from lottery.engine import compile_cache
from lottery.engine.training import Engine, TrainConfig

s = load_split(Path(sys.argv[1]))
small = Split(s.x_train, s.y_train, s.x_val[:1000], s.y_val[:1000], s.x_test[:1000],
              s.y_test[:1000], image_shape=s.image_shape)
inits = [glorot_normal_init(np.random.default_rng([3, k]), LENET) for k in range(3)]
mask = {layer: np.ones(LAYER_SHAPES[layer], bool) for layer in LAYERS}
results = Engine(small, 3, TrainConfig(20, eval_every=10), LENET).train(
    inits, [mask] * 3, [5, 6, 7], progress=lambda _: None)
print("weights", "-".join(weights_hash(r.weights, arch=LENET) for r in results))
"""


def train(data: Path, cache: Path, one_cpu: bool = False) -> tuple[str, str]:
    """(the weights' hash, TensorFlow's log of the cache) of one training process, on one CPU
    of this machine's if `one_cpu`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LOTTERY_XLA"))}
    env |= {
        "LOTTERY_XLA_CACHE": str(cache),
        "TF_CPP_MIN_LOG_LEVEL": "0",
        "TF_CPP_VMODULE": "device_executable_persistor=1",
    }
    cpus = os.sched_getaffinity(0)
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN, str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        preexec_fn=(lambda: os.sched_setaffinity(0, {min(cpus)})) if one_cpu else None,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.split("weights ")[1].strip(), proc.stderr


def count(log: str, what: str) -> int:
    return len(re.findall(rf"{what}(?: for)?: __inference", log))


@dataclass
class Cold:
    data: Path
    cache: Path
    weights: str
    log: str


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> Cold:
    """One training process on a new, empty cache (all this machine's CPUs)."""
    tmp = tmp_path_factory.mktemp("process")
    data = tmp / "data"
    prepare(ROOT / "data" / "mnist", data, validation_size=5000, stratified=True, seed=0)
    cache = tmp / "xla"
    return Cold(data, cache, *train(data, cache))


def test_a_cached_program_is_bit_identical_and_a_damaged_entry_is_replaced(cold: Cold) -> None:
    [shared] = list(cold.cache.iterdir())
    entries = sorted(shared.glob("*.pb"))
    # A training chunk and one evaluation: one program for each of the 3 networks (its row
    # an argument) on both sets (1,000 images each).
    assert len(entries) == 2, entries
    assert count(cold.log, "Serializing and saving cache entry") == len(entries)
    assert count(cold.log, "Loading cached entry") == 0
    assert all(complete(p) for p in entries)
    assert list((shared / ".work").iterdir()) == [], "a private folder was left behind"

    damaged = entries[0]
    damaged.write_bytes(damaged.read_bytes()[:1000])  # a truncated file, as a crash leaves it
    assert not complete(damaged)
    warm, log = train(cold.data, cold.cache)
    assert warm == cold.weights
    assert count(log, "Loading cached entry") == len(entries) - 1
    assert count(log, "Serializing and saving cache entry") == 1
    assert complete(damaged), "the damaged entry was not replaced"
    assert sorted(shared.glob("*.pb")) == entries


def test_a_network_s_bits_do_not_depend_on_the_machine_s_cores(cold: Cold) -> None:
    """TensorFlow sizes its intra-op pool by the cores a process may use, and Eigen splits a
    matrix product by the pool's size: unpinned, a process on 1 CPU of this 2-core machine
    trained other weights (measured). The engine pins the pool at 2 threads."""
    one_cpu, _ = train(cold.data, cold.cache, one_cpu=True)
    assert one_cpu == cold.weights


def test_the_cache_folder_is_named_by_the_environment(tmp_path: Path) -> None:
    assert root({"LOTTERY_XLA_CACHE": str(tmp_path)}) == tmp_path
    for off in ("off", "0", "", "OFF", "false"):
        assert root({"LOTTERY_XLA_CACHE": off}) is None
    assert root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "lottery" / "xla"
    assert root({}) == Path.home() / ".cache" / "lottery" / "xla"


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu MHz\t\t: 1996.249
bogomips\t: 3992.49
flags\t\t: fpu sse4_2 avx avx2 fma

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu MHz\t\t: 1999.000
flags\t\t: fpu sse4_2 avx avx2 fma
"""


def test_the_shared_folder_is_one_per_cpu_tensorflow_xla_flags_and_thread_count() -> None:
    key = machine_key(CPUINFO, "", "tensorflow-cpu-2.21.0", 2)
    # The clock and other CPUs' lines do not matter; the order of the flags does not either.
    assert (
        machine_key(CPUINFO.replace("1996.249", "2400.000"), "", "tensorflow-cpu-2.21.0", 2) == key
    )
    assert (
        machine_key(CPUINFO.replace("avx avx2", "avx2 avx"), "", "tensorflow-cpu-2.21.0", 2) == key
    )
    other = {
        "another CPU feature": (CPUINFO.replace("fma\n\n", "fma avx512f\n\n"), ""),
        "another model": (
            CPUINFO.replace("AMD EPYC\ncpu MHz\t\t: 1996", "AMD EPYC 9654\ncpu MHz\t\t: 1996"),
            "",
        ),
        "XLA_FLAGS": (CPUINFO, "--xla_cpu_max_isa=AVX"),
    }
    for what, (cpuinfo, xla_flags) in other.items():
        assert machine_key(cpuinfo, xla_flags, "tensorflow-cpu-2.21.0", 2) != key, what
    assert machine_key(CPUINFO, "", "tensorflow-cpu-2.22.0", 2) != key
    assert machine_key(CPUINFO, "", "tensorflow-cpu-2.21.0", 8) != key


def test_enable_leaves_a_users_cache_flag_and_replaces_a_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOTTERY_XLA_CACHE", str(tmp_path / "xla"))
    monkeypatch.delenv(compile_cache.ADDED, raising=False)
    published: list[compile_cache.Workspace] = []
    monkeypatch.setattr(compile_cache.atexit, "register", lambda fn: published.append(fn))
    mine = "--tf_xla_persistent_cache_directory=/somewhere/else"
    monkeypatch.setenv("TF_XLA_FLAGS", mine)
    assert enable() is None
    assert os.environ["TF_XLA_FLAGS"] == mine

    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    parent = enable()
    assert parent is not None
    flags = os.environ["TF_XLA_FLAGS"]
    assert flags.startswith("--tf_xla_auto_jit=0 ") and str(parent.private) in flags
    child = enable()  # a child process inherits the parent's environment
    assert child is not None and child.private != parent.private
    assert os.environ["TF_XLA_FLAGS"].count("persistent_cache_directory") == 1
    assert str(child.private) in os.environ["TF_XLA_FLAGS"]
    monkeypatch.setenv("LOTTERY_XLA_CACHE", "off")
    assert enable() is None
    assert os.environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=0", "a parent's folder was kept"
    for space in (parent, child):
        assert space.publish() == []
        assert not space.private.exists()


def test_a_dead_processs_private_folder_is_swept_after_a_day(tmp_path: Path) -> None:
    work = tmp_path / ".work"
    day_old = time.time() - compile_cache.STALE_AFTER - 60
    dead, mine, recent = work / "999999999-a", work / f"{os.getpid()}-b", work / "999999998-c"
    for folder in (dead, mine, recent):
        folder.mkdir(parents=True)
    for folder in (dead, mine):
        os.utime(folder, (day_old, day_old))
    space = compile_cache.Workspace(tmp_path)
    assert not dead.exists()
    assert mine.exists() and recent.exists()
    assert space.private.parent == work


def test_a_tensorflow_imported_first_gets_the_engine_s_pool_or_a_clear_refusal() -> None:
    """Someone else's `import tensorflow` before the engine's: the pool is sized as long as
    no op has run; after one has, TensorFlow's pool is fixed and training is refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LOTTERY_"))}
    env["LOTTERY_XLA_CACHE"] = "off"
    before = (
        "import tensorflow as tf\n"
        "from lottery.engine import mlp\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", before], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 0 and out.stdout.split() == ["2"], out.stderr[-2000:]
    after_an_op = "import tensorflow as tf\ntf.constant(1.0) + 1\nfrom lottery.engine import mlp\n"
    out = subprocess.run(
        [sys.executable, "-c", after_an_op], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode != 0
    assert "import lottery.engine before running any TensorFlow op" in out.stderr
