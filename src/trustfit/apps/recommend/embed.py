"""Sentence embeddings from an encoder: mean of the last hidden states over real sub-tokens,
L2-normalised (how all-MiniLM-L6-v2 was trained to be used), in length-sorted batches."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from trustfit.hardware import resolve_precision
from trustfit.predict import inference, token_budget_batches


class Embedder:
    def __init__(self, source: str | None, max_length: int = 128, batch_size: int = 64,
                 precision: str = "auto") -> None:
        from transformers import AutoModel

        from trustfit.models.backbone import _from_pretrained, load_tokenizer, resolve_model_source

        self.source = resolve_model_source(source)
        self.tokenizer = load_tokenizer(self.source)
        self.model = _from_pretrained(AutoModel, self.source)
        self.max_length, self.batch_size = max_length, batch_size
        self.precision = resolve_precision(precision)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), hidden] float32, unit length."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
        out = np.zeros((len(enc), self.model.config.hidden_size), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        with inference(self.model, torch.device("cpu"), self.precision) as model:
            for b in token_budget_batches([len(enc[i]) for i in order], self.batch_size, 16384):
                idx = [order[i] for i in b]
                n = max(len(enc[i]) for i in idx)
                ids = torch.full((len(idx), n), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), n), dtype=torch.long)
                for r, i in enumerate(idx):
                    ids[r, : len(enc[i])] = torch.tensor(enc[i])
                    mask[r, : len(enc[i])] = 1
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out
