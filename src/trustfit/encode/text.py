"""Encoding for sequence classification: one feature per example (text, or text pair), with
token_type_ids for pairs. Inputs longer than the model's limit are truncated (longest first);
how many were truncated is counted and reported, never hidden."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from trustfit.data.text import TextCorpus


@dataclass
class TextFeature:
    input_ids: list[int]
    token_type_ids: list[int] | None
    label: int
    n_words: int
    index: int

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(corpus: TextCorpus, tokenizer, label2id: dict[str, int] | None, max_length: int,
                 batch: int = 4096) -> tuple[list[TextFeature], int]:
    """(features, number of truncated examples)."""
    feats: list[TextFeature] = []
    truncated = 0
    ex = corpus.examples
    for i in range(0, len(ex), batch):
        chunk = ex[i:i + batch]
        texts = [e.text for e in chunk]
        pairs = [e.text_pair for e in chunk] if chunk and chunk[0].text_pair is not None else None
        full = tokenizer(texts, pairs, truncation=False) if pairs else tokenizer(texts, truncation=False)
        enc = tokenizer(texts, pairs, truncation="longest_first", max_length=max_length) if pairs else \
            tokenizer(texts, truncation=True, max_length=max_length)
        for j, e in enumerate(chunk):
            ids = enc["input_ids"][j]
            truncated += len(full["input_ids"][j]) > len(ids)
            tt = enc["token_type_ids"][j] if pairs and "token_type_ids" in enc else None
            lab = label2id[e.label] if (label2id is not None and e.label is not None) else -1
            n_words = len(e.text.split()) + len((e.text_pair or "").split())
            feats.append(TextFeature(ids, tt, lab, n_words, i + j))
    return feats, truncated


def collate_texts(features: Sequence[TextFeature], pad_id: int) -> dict[str, torch.Tensor]:
    """Dynamic padding for classification features."""
    n = max(len(f) for f in features)
    ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), n), dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask}
    if features[0].token_type_ids is not None:
        out["token_type_ids"] = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        ids[i, : len(f)] = torch.tensor(f.input_ids)
        mask[i, : len(f)] = 1
        if "token_type_ids" in out:
            out["token_type_ids"][i, : len(f)] = torch.tensor(f.token_type_ids)
    out["labels"] = torch.tensor([f.label for f in features], dtype=torch.long)
    return out
