"""What this machine's CPU can do, read from /proc/cpuinfo (Linux), and the precision it trains in best."""

from __future__ import annotations

import functools
import platform
from typing import FrozenSet, Tuple

#: CPU flags of bfloat16 arithmetic that oneDNN uses (AVX-512 BF16: AMD Zen 4, Intel Cooper Lake;
#: AMX: Intel Sapphire Rapids).  Without them bfloat16 is emulated and slower than float32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> Tuple[str, FrozenSet[str]]:
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    name = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), platform.machine())
    flags = next((l.split(":", 1)[1].split() for l in lines if l.startswith("flags")), [])
    return name, frozenset(flags)


def cpu_flags() -> FrozenSet[str]:
    return _cpuinfo()[1]


def cpu_name() -> str:
    """The CPU's model name and its widest vector extension, e.g. "AMD EPYC (AVX-512, BF16)"."""
    name, flags = _cpuinfo()
    features = ["AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""]
    features.append("BF16" if fast_bfloat16() else "")
    features = [f for f in features if f]
    return f"{name} ({', '.join(features)})" if features else name


def fast_bfloat16() -> bool:
    """True when the CPU computes bfloat16 natively (see :data:`BF16_FLAGS`)."""
    return any(f in cpu_flags() for f in BF16_FLAGS)


def resolve_precision(precision: str) -> str:
    """Config.precision -> "float32" or "bfloat16".  "auto": bfloat16 on a CPU that computes it natively
    and has no GPU to train on (measured there: 1.26x the images/s and an equal or lower FID for the same
    minutes, README "Speed"); float32 everywhere else, GPUs included, until they are measured."""
    if precision != "auto":
        return precision
    if not fast_bfloat16():
        return "float32"
    import tensorflow as tf
    return "float32" if tf.config.list_physical_devices("GPU") else "bfloat16"
