"""What the CPU can do fast. bf16 autocast pays off only where the CPU has native bf16 dot
products (AVX512-BF16 or AMX); without them (plain AVX-512 or AVX2) bf16 matmuls are emulated
and run slower than fp32 (bench/roofline.py measures both on a given CPU), so "auto" picks fp32."""

from __future__ import annotations

import functools


@functools.cache
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(setting: bool | None) -> bool:
    """``None`` means auto: bf16 where the CPU has native bf16 arithmetic."""
    return cpu_has_fast_bf16() if setting is None else setting
