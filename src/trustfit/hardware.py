"""Hardware facts that choose defaults (precision)."""

from __future__ import annotations


def resolve_precision(precision: str) -> str:
    """'auto' -> 'bf16' where bf16 matrix work is native (CUDA with bf16, x86 CPUs with AVX512-BF16
    or AMX), else 'fp32'. Measured on a 2-core AVX512-BF16 CPU: 1.8x training words/s, same F1."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "fp32"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def release_freed_memory_eagerly(mmap_threshold: int = 1 << 20, trim_threshold: int = 4 << 20) -> bool:
    """Ask glibc to serve allocations above `mmap_threshold` with mmap (returned to the system
    on free) and to trim the heap above `trim_threshold`.

    Training with dynamic padding allocates tensors of ever-changing shapes; glibc's default
    (a threshold that grows up to 32 MiB) keeps them in a fragmenting heap, so the resident size
    climbs far above what is alive. Returns False where this is not glibc (nothing changed)."""
    import ctypes
    import platform

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                          trim_threshold))
    except (OSError, AttributeError):
        return False
