"""The CPU family a run records (`lottery.core.machine`): model and vector extensions; and
the engine's thread count, fixed whatever the cores."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest

from lottery.core.machine import (
    DEFAULT_THREADS,
    ISA_FLAGS,
    THREADS_ENV,
    ThreadsError,
    describe,
    parse_cpuinfo,
    threads,
    trained_on,
)

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 sha_ni
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse sse2
"""
INTEL = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: sse4_2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
"""


def test_the_first_cpu_s_model_and_extensions_in_a_fixed_order() -> None:
    assert parse_cpuinfo(AMD) == ("AMD EPYC", ("sse4_2", "avx", "avx2", "fma"))
    model, isa = parse_cpuinfo(INTEL)
    assert model.startswith("Intel(R) Xeon(R) Platinum")
    assert isa == tuple(f for f in ISA_FLAGS if f not in ("avx512_fp16",))
    assert parse_cpuinfo(ARM) == ("", ())  # no x86 extension, no model line


def test_this_machine_is_described_by_its_cpu_and_architecture() -> None:
    line = describe()
    assert f"; {platform.machine()}: " in line
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model, isa = parse_cpuinfo(cpuinfo.read_text())
        assert line.startswith(model) and line.endswith(" ".join(isa) or "extensions not listed")


def test_the_thread_count_is_fixed_whatever_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert threads() == DEFAULT_THREADS == 2
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "6")  # TensorFlow's own setting is honoured
    assert threads() == 6
    monkeypatch.setenv(THREADS_ENV, "3")  # ... and ours wins over it
    assert threads() == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ThreadsError, match=f"LOTTERY_THREADS='{re.escape(bad)}'.*at least 1"):
            threads()


def test_a_run_s_machine_kind_is_its_cpu_family_and_thread_count() -> None:
    assert trained_on("AMD EPYC; x86_64: avx2", "2", "/device:CPU:0") == (
        "AMD EPYC; x86_64: avx2, 2 threads"
    )
    assert trained_on(None, None) == "CPU not recorded, threads not recorded"  # older runs
    assert trained_on("AMD EPYC", "2", "/device:GPU:0") == (
        "/device:GPU:0 (bits within float tolerance only)"
    )
