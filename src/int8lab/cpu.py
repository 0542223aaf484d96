"""The CPU that latency figures come from, and what its instruction sets mean for int8.

An int8 model is faster than its fp32 one only where the CPU multiplies int8 cheaply: x86 with
VNNI (AVX-512 VNNI, AVX-VNNI) or AMX, ARM with the dot-product (or i8mm) extension. Without them
XNNPACK's int8 kernels widen to 16 bits and can lose to its fp32 ones, so a latency figure means
little without the CPU beside it.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path

# The flags /proc/cpuinfo uses, and the names people know them by.
INT8_FEATURES = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI",
                 "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8", "asimd": "NEON", "asimddp": "dot product",
                 "i8mm": "i8mm", "sve": "SVE"}
INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    machine: str
    cores: int
    features: tuple[str, ...]  # the int8-relevant flags found, as INT8_FEATURES names them

    @property
    def int8_dot_product(self) -> bool:
        return any(INT8_FEATURES[flag] in self.features for flag in INT8_DOT)

    def describe(self) -> str:
        """``AMD EPYC (x86_64, 2 cores: AVX2, AVX-512 VNNI)``."""
        return f"{self.model} ({self.machine}, {self.cores} cores: {', '.join(self.features) or 'no SIMD flags read'})"

    def int8_meaning(self) -> str:
        if self.int8_dot_product:
            return "int8 dot products in hardware: int8 convolutions can run well ahead of fp32"
        return ("no int8 dot-product instructions (VNNI, ARM dot product): XNNPACK widens int8 to 16 bits, and "
                "int8 can be no faster than fp32 here; on a phone with them it usually is 1.4-1.6x faster")

    def as_dict(self) -> dict:
        return {**asdict(self), "int8_dot_product": self.int8_dot_product, "int8": self.int8_meaning()}


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """What this machine's CPU is and has (Linux's /proc/cpuinfo; elsewhere, what platform says)."""
    import os

    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and value.strip():
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    features = tuple(name for flag, name in INT8_FEATURES.items() if flag in flags)
    return CpuInfo(model, platform.machine(), os.cpu_count() or 1, features)
