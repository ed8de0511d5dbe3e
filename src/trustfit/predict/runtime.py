"""Where a predictor's forward pass runs, by name: `torch` (eager PyTorch, bf16 autocast where
native), `int8` (PyTorch with the linear layers dynamically quantised to int8), `onnx` (ONNX
Runtime on an exported graph) or `onnx-int8` (that graph's matrix weights quantised to int8).
`use_runtime(predictor, name)` swaps the predictor's model; the predictor, the CLI, the server
and the benchmarks stay unchanged. Speed and F1 of each: bench/ner_predict.py."""

from __future__ import annotations

from typing import Callable

import torch

from trustfit.errors import TrustfitError


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of the linear layers (weights int8 per output channel, which
    halves per-tensor weights' F1 cost; activations quantised per batch at run time): a smaller
    model that is faster where fp32 is the alternative."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})


def _onnx(model: torch.nn.Module, int8: bool = False) -> torch.nn.Module:
    from trustfit.predict.onnx import to_onnx_runtime

    return to_onnx_runtime(model, int8=int8)


# name -> model transform; every runtime but torch computes in fp32 (or int8), never bf16 autocast
RUNTIMES: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] = {
    "torch": lambda model: model,
    "int8": quantize_int8,
    "onnx": _onnx,
    "onnx-int8": lambda model: _onnx(model, int8=True),
}


def use_runtime(predictor, name: str) -> None:
    """Run `predictor` (NER or classifier: anything with .model and .precision) on runtime `name`."""
    if name not in RUNTIMES:
        raise TrustfitError(f"unknown runtime {name!r}: use one of {', '.join(RUNTIMES)}")
    if name == "torch":
        return
    predictor.model = RUNTIMES[name](predictor.model)
    predictor.precision = "fp32"  # int8 kernels / ONNX Runtime graphs: bf16 autocast does not apply
