"""Hardware facts that choose defaults (precision), and the record of them a run keeps."""

from __future__ import annotations

import os

# the CPU flags that decide trustfit's kernels (recorded in train_summary.json)
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

# ONEDNN_MAX_CPU_ISA values in oneDNN's order, and the flags each level leaves usable
_ONEDNN_LEVELS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                  "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX512_CORE_AMX")
_FIRST_LEVEL = {"avx512f": "AVX512_CORE", "avx512_vnni": "AVX512_CORE_VNNI", "avx512_bf16": "AVX512_CORE_BF16",
                "amx_tile": "AVX512_CORE_AMX", "amx_bf16": "AVX512_CORE_AMX", "amx_int8": "AVX512_CORE_AMX"}

# the environment that makes an AVX512/AMX CPU run PyTorch's kernels as an AVX2-only CPU would
# (ATen's vector kernels, oneDNN, MKL and fbgemm's int8 kernels each capped): used by the
# benchmarks' --emulate avx2. ONNX Runtime's MLAS has no such cap.
EMULATE_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}
# the caps that hide native bf16 from PyTorch (MKL's and fbgemm's only narrow fp32 and int8 products)
_BF16_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def cpu_info(text: str | None = None, env: dict | None = None) -> dict:
    """CPU model name and the relevant flags, from /proc/cpuinfo (or `text`); flags above an
    instruction-set cap (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY in `env`, default the process's)
    are listed under `capped`, not `flags`, since PyTorch will not use them."""
    if text is None:
        try:
            text = open("/proc/cpuinfo").read()
        except OSError:
            return {"model": None, "flags": [], "capped": [], "caps": {}}
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags":
            flags.update(value.split())
    present = [f for f in RELEVANT_FLAGS if f in flags]
    caps = isa_caps(os.environ if env is None else env)
    usable = [f for f in present if not _capped(f, caps)]
    return {"model": model, "flags": usable, "capped": [f for f in present if f not in usable], "caps": caps}


def isa_caps(env) -> dict:
    """The instruction-set caps set in `env` that PyTorch's kernel sources honour (ATen, oneDNN,
    MKL, fbgemm; flags are hidden by the first two, the others only narrow their products)."""
    return {k: env[k] for k in (*_BF16_CAPS, "MKL_ENABLE_INSTRUCTIONS", "FBGEMM_ENABLE_INSTRUCTIONS") if env.get(k)}


def _capped(flag: str, caps: dict) -> bool:
    level = _FIRST_LEVEL.get(flag)
    if level is None:
        return False
    onednn = caps.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if onednn in _ONEDNN_LEVELS and _ONEDNN_LEVELS.index(onednn) < _ONEDNN_LEVELS.index(level):
        return True
    return caps.get("ATEN_CPU_CAPABILITY", "").lower() in ("default", "avx2")


def cpu_kind(info: dict | None = None) -> str:
    """The CPU's class for speed figures: 'AMX', 'AVX512-BF16', 'AVX512' or 'AVX2' (or 'other'),
    the point being whether bf16 is native (the first two) or emulated; ' (capped)' when an
    instruction-set cap hides what the CPU has."""
    info = info or cpu_info()
    flags = set(info["flags"])
    suffix = " (capped)" if info.get("capped") else ""
    for kind, flag in (("AMX", "amx_bf16"), ("AVX512-BF16", "avx512_bf16"), ("AVX512", "avx512f"), ("AVX2", "avx2")):
        if flag in flags:
            return kind + suffix
    return "other" + suffix


def precision_choice(precision: str, cpuinfo: str | None = None, env: dict | None = None) -> tuple[str, str]:
    """(precision, why): 'auto' -> 'bf16' where bf16 matrix work is native (CUDA with bf16, x86
    CPUs with AVX512-BF16 or AMX, not capped), else 'fp32' (emulated bf16 is many times slower
    than fp32: measured 70x on one capped linear layer). Measured on a 2-core AVX512-BF16 CPU:
    1.8x training words/s, same F1."""
    if precision != "auto":
        return precision, f"{precision}: asked for with --precision"
    import torch

    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16", "bf16 autocast: this GPU supports bf16"
        return "fp32", "fp32: this GPU has no bf16"
    info = cpu_info(cpuinfo, env)
    native = [f for f in ("amx_bf16", "avx512_bf16") if f in info["flags"]]
    if native:
        return "bf16", f"bf16 autocast: this CPU has native bf16 ({', '.join(native)})"
    hidden = [f for f in ("amx_bf16", "avx512_bf16") if f in info["capped"]]
    if hidden:
        caps = ", ".join(f"{k}={v}" for k, v in info["caps"].items() if k in _BF16_CAPS)
        return "fp32", f"fp32: this CPU's native bf16 ({', '.join(hidden)}) is capped by {caps}"
    return "fp32", "fp32: this CPU has no native bf16 (no AVX512-BF16 or AMX; emulated bf16 would be slower)"


def resolve_precision(precision: str) -> str:
    """The precision a run uses (see `precision_choice` for why)."""
    return precision_choice(precision)[0]


# oneDNN (PyTorch's bf16 CPU kernels) caches a compiled kernel and its scratch memory for every
# shape it meets, 1,024 by default. Training meets hundreds of shapes (inputs of varying length in
# batches of varying size) and seldom the same one twice in a row: there the full cache held
# 600-650 MB for little speed (64 entries: 7 % faster, 230 MB more; bench/RESULTS.md, "oneDNN's
# kernel cache"). Prediction repeats its shapes, and keeps oneDNN's default.
ONEDNN_CACHE_VAR = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
TRAINING_ONEDNN_CACHE = 0


def bound_onednn_cache(env: dict | None = None) -> str:
    """For a training process: oneDNN's kernel cache at TRAINING_ONEDNN_CACHE entries unless the
    user set ONEDNN_PRIMITIVE_CACHE_CAPACITY. oneDNN reads it when it first builds a kernel, so it
    holds only where the process has not run a bf16 product yet. Returns the capacity in force."""
    env = os.environ if env is None else env
    return env.setdefault(ONEDNN_CACHE_VAR, str(TRAINING_ONEDNN_CACHE))
