"""Classification inference: length-sorted batches, probabilities with the temperature stored
with the model (if calibrated), top-k labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trustfit.data.text import TextCorpus
from trustfit.encode.text import collate_texts, encode_texts
from trustfit.encode.tokenize import model_max_length
from trustfit.hardware import resolve_precision
from trustfit.predict import inference, token_budget_batches


@dataclass
class ClassifyPrediction:
    logits: np.ndarray  # [n, classes], before temperature
    probs: np.ndarray  # [n, classes], after temperature
    labels: list[str]
    truncated: int
    decided: np.ndarray | None = None  # labels chosen by fairness group thresholds, when applied

    def top_k(self, i: int, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs[i])[:k]
        return [(self.labels[j], float(self.probs[i, j])) for j in order]


class ClassifierPredictor:
    def __init__(self, model, tokenizer, labels: list[str], temperature: float = 1.0, max_length: int | None = None,
                 batch_size: int = 64, device: str | torch.device = "cpu", precision: str = "auto",
                 max_batch_tokens: int = 8192) -> None:
        self.model, self.tokenizer, self.labels = model, tokenizer, list(labels)
        self.temperature = temperature
        self.max_length = max_length or model_max_length(tokenizer, model.config)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.device = torch.device(device)
        self.precision = resolve_precision(precision)

    @classmethod
    def from_dir(cls, model_dir: str, **kw) -> "ClassifierPredictor":
        from trustfit.models.backbone import load_trained_classifier

        model, tok, labels, meta = load_trained_classifier(model_dir)
        kw.setdefault("temperature", meta.get("temperature", 1.0))
        kw.setdefault("max_length", meta.get("encoding", {}).get("max_length"))
        return cls(model, tok, labels, **kw)

    def logits(self, corpus: TextCorpus) -> tuple[np.ndarray, int]:
        """Raw logits [n, classes] in input order, and how many inputs were truncated."""
        feats, truncated = encode_texts(corpus, self.tokenizer, None, self.max_length)
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]))
        out = np.zeros((len(feats), len(self.labels)), dtype=np.float32)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with inference(self.model, self.device, self.precision) as model:
            for b in token_budget_batches([len(feats[i]) for i in order], self.batch_size, self.max_batch_tokens):
                idx = [order[i] for i in b]
                batch = collate_texts([feats[i] for i in idx], pad)
                batch.pop("labels")
                out[idx] = model(**{k: v.to(self.device) for k, v in batch.items()}).logits.float().cpu().numpy()
        return out, truncated

    def predict(self, corpus: TextCorpus) -> ClassifyPrediction:
        from trustfit.evaluate.classify import softmax

        logits, truncated = self.logits(corpus)
        return ClassifyPrediction(logits, softmax(logits.astype(np.float64), self.temperature), self.labels, truncated)


def classify_record(text: str, pred: ClassifyPrediction, i: int, top_k: int) -> dict:
    """The JSON of one classified text, as `trustfit predict` and the server write it."""
    top = pred.top_k(i, top_k)
    return {"text": text, "label": top[0][0], "score": round(top[0][1], 4),
            "top_k": [{"label": l, "score": round(p, 4)} for l, p in top]}
