"""An ONNX Runtime backend for the predictors: the trained model exported once with
`torch.onnx.export` (dynamic batch and length axes) and run by an `onnxruntime` session behind
a module that answers like the Hugging Face model (`.logits`), so both predictors, the server
and the benchmarks use it unchanged; optionally with ONNX Runtime's dynamic int8 quantisation.
Optional: `pip install onnx onnxruntime`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from trustfit.errors import ModelError


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args):
        return self.model(**dict(zip(self.names, args))).logits


def export_onnx(model: torch.nn.Module, path: str | Path, with_token_types: bool = False) -> Path:
    """Write `model` (token or sequence classification) as ONNX with dynamic batch/length axes."""
    names = ("input_ids", "attention_mask") + (("token_type_ids",) if with_token_types else ())
    ids = torch.ones((2, 8), dtype=torch.long)
    args = tuple(ids if n == "input_ids" else torch.ones_like(ids) if n == "attention_mask" else torch.zeros_like(ids)
                 for n in names)
    axes = {n: {0: "batch", 1: "length"} for n in names}
    axes["logits"] = {0: "batch", 1: "length"} if model.config.architectures is None or "TokenClassification" in (
        (model.config.architectures or [""])[0]) else {0: "batch"}
    path = Path(path)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        torch.onnx.export(_LogitsOnly(model, names), args, str(path), input_names=list(names), output_names=["logits"],
                          dynamic_axes=axes, dynamo=False, opset_version=17)
    if was_training:
        model.train()
    return path


class OnnxModule(torch.nn.Module):
    """Runs an exported model in ONNX Runtime; called like the HF model it came from."""

    def __init__(self, path: str | Path, config, threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("--runtime onnx needs ONNX Runtime: pip install onnx onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = config

    def forward(self, **kw):
        feed = {n: kw[n].cpu().numpy().astype(np.int64) for n in self.inputs if n in kw}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        (logits,) = self.session.run(["logits"], feed)
        return SimpleNamespace(logits=torch.from_numpy(logits))


def to_onnx_runtime(model: torch.nn.Module, folder: str | Path | None = None, int8: bool = False) -> OnnxModule:
    """Export `model` into `folder` (a fresh temporary folder by default) and load it in ONNX
    Runtime; `int8`: with ONNX Runtime's dynamic int8 quantisation of the matrix weights, per
    output channel and in 7 bits (reduce_range), which keeps fp32's entity F1 (bench/RESULTS.md):
    per-tensor weights cost about 1 F1 point, and 8-bit weights can saturate the 16-bit sums of
    AVX2's int8 products on CPUs without VNNI."""
    folder = Path(folder or tempfile.mkdtemp(prefix="trustfit-onnx-"))
    folder.mkdir(parents=True, exist_ok=True)
    with_tt = getattr(model.config, "type_vocab_size", 0) > 1 and "TokenClassification" not in (
        (model.config.architectures or [""])[0])
    path = export_onnx(model, folder / "model.onnx", with_token_types=with_tt)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(path), str(folder / "model.int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
        path = folder / "model.int8.onnx"
    return OnnxModule(path, model.config)
