"""The CPU family a run records (`lottery.core.machine`): model and vector extensions."""

from __future__ import annotations

import platform
from pathlib import Path

from lottery.core.machine import ISA_FLAGS, describe, parse_cpuinfo

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
