"""The compute precision of a run: ``--precision auto`` picks what the hardware computes fast.

Variables stay float32 in every mixed policy (Micikevicius et al. 2018, Section 3.1); only
``mixed_float16`` needs loss scaling (bfloat16 has float32's exponent range).
"""

from __future__ import annotations

import functools

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic: AVX512_BF16 dot products, AMX tiles.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# NVIDIA GPUs compute bfloat16 in tensor cores from Ampere (compute capability 8.0) on.
BF16_GPU_CAPABILITY = (8, 0)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def choose(precision: str = "auto") -> str:
    """The Keras dtype policy name for ``precision`` (one of :data:`PRECISIONS`).

    ``auto``: ``mixed_bfloat16`` on TPUs, on GPUs of compute capability 8.0 or more and
    on CPUs with :data:`BF16_CPU_FLAGS`; ``mixed_float16`` on older GPUs; else ``float32``.

    Example:
        >>> choose("float32")
        'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose from {PRECISIONS}.")
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return "mixed_bfloat16"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
        return "mixed_bfloat16" if tuple(capability) >= BF16_GPU_CAPABILITY else "mixed_float16"
    return "mixed_bfloat16" if cpu_flags() & set(BF16_CPU_FLAGS) else "float32"
