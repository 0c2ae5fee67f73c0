"""The CPU a network was trained on, in the terms that decide its float arithmetic.

XLA compiles the engine's steps for the host's instruction set: measured on one AMD EPYC
(AVX2, FMA), `XLA_FLAGS=--xla_cpu_max_isa=AVX` changes a network's weights after 400
iterations, and that machine's weights differ from those of the team's earlier hosts in
their last bits (masks and metrics of the tests' tiny study agree). Bits are therefore
reproducible on a CPU of the same family, and `describe()` names the family: every training
run records it (MLflow tag `lottery.cpu`), and so does `lottery bench`.

The number of threads of TensorFlow's intra-op pool changes the bits too: Eigen splits a
matrix product by the pool's size. Measured on that AMD EPYC (a tiny stage's trained
weights): 1 thread gives one set of bits, 2 and 4 another, 3, 8 and 16 a third. TensorFlow
sizes the pool by the cores it may use, so a 1-core container, a 2-core CI machine and an
8-core laptop of one CPU family would each train other networks from the same seed. The
engine therefore fixes the pool's size (`threads()`: 2 unless `LOTTERY_THREADS` says
otherwise), whatever the machine; every training run records it (`lottery.threads`).
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

from lottery.core.errors import UserError

#: The vector extensions that change what XLA's CPU backend emits (flag names as Linux's
#: /proc/cpuinfo spells them), in the order they are printed.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
)


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """(model name, the ISA_FLAGS it has) from the text of /proc/cpuinfo (its first CPU)."""
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, tuple(f for f in ISA_FLAGS if f in flags)


@cache
def cpuinfo() -> str:
    """The text of /proc/cpuinfo, or "" where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@cache
def describe() -> str:
    """One line: the CPU model, the architecture and its vector extensions, e.g.
    "AMD EPYC; x86_64: sse4_2 avx avx2 fma"."""
    arch = platform.machine() or "unknown architecture"
    text = cpuinfo()
    # Not Linux: the processor string is all the platform gives.
    model, isa = parse_cpuinfo(text) if text else (platform.processor(), ())
    extensions = " ".join(isa) if isa else "extensions not listed"
    return f"{model or 'unknown CPU'}; {arch}: {extensions}"


class ThreadsError(UserError):
    """A thread count that is not one."""


#: The environment variable that sets the engine's thread count (bits depend on it).
THREADS_ENV = "LOTTERY_THREADS"
#: The thread count of every recorded result: the references, the kept studies.
DEFAULT_THREADS = 2


def threads() -> int:
    """The size of TensorFlow's intra-op pool for training: `LOTTERY_THREADS`, else
    `TF_NUM_INTRAOP_THREADS` (TensorFlow's own setting), else 2, on any machine."""
    for name in (THREADS_ENV, "TF_NUM_INTRAOP_THREADS"):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        if not value.isdigit() or int(value) < 1:
            raise ThreadsError(
                f"{name}={value!r} is not a thread count: give a whole number of at least 1 "
                f"(unset it for the default, {DEFAULT_THREADS}, with which every recorded "
                "result was trained)"
            )
        return int(value)
    return DEFAULT_THREADS


def trained_on(cpu: str | None, threads: str | int | None, device: str | None = None) -> str:
    """One line for the machine kind a run's bits are those of (`lottery audit` groups runs by
    it): the CPU family and the thread count, or the device where it is not the CPU. Runs
    from before these were recorded say so."""
    if device and "GPU" in device.upper():
        return f"{device} (bits within float tolerance only)"
    count = f"{threads} threads" if threads else "threads not recorded"
    return f"{cpu or 'CPU not recorded'}, {count}"


def this_machine() -> str:
    """`trained_on` for a run trained here, now."""
    return trained_on(describe(), threads())
