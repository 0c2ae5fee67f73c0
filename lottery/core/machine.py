"""The CPU a network was trained on, in the terms that decide its float arithmetic.

XLA compiles the engine's steps for the host's instruction set: measured on one AMD EPYC
(AVX2, FMA), `XLA_FLAGS=--xla_cpu_max_isa=AVX` changes a network's weights after 400
iterations, and that machine's weights differ from those of the team's earlier hosts in
their last bits (masks and metrics of the tests' tiny study agree). Bits are therefore
reproducible on a CPU of the same family, and `describe()` names the family: every training
run records it (MLflow tag `lottery.cpu`), and so does `lottery bench`.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

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
def describe() -> str:
    """One line: the CPU model, the architecture and its vector extensions, e.g.
    "AMD EPYC; x86_64: sse4_2 avx avx2 fma"."""
    arch = platform.machine() or "unknown architecture"
    try:
        model, isa = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: the processor string is all the platform gives
        model, isa = platform.processor(), ()
    extensions = " ".join(isa) if isa else "extensions not listed"
    return f"{model or 'unknown CPU'}; {arch}: {extensions}"
