"""Each example's loss under a trained model: the signal membership inference and canary
exposure read. An example is scored alone (no document context, no packing), as DP training
sees it; NER losses are the mean over the sentence's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trustfit.errors import DataError


class LossScorer:
    """Per-example losses of one trained model folder (NER or classification)."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64) -> None:
        from trustfit.models.backbone import load_trained, load_trained_classifier, model_task

        self.model_dir, self.batch_size = str(model_dir), batch_size
        self.task = model_task(model_dir)
        if self.task == "ner":
            self.model, self.tokenizer, self.schema, self.meta = load_trained(model_dir)
            self.labels = list(self.schema.labels)
        else:
            self.model, self.tokenizer, self.labels, self.meta = load_trained_classifier(model_dir)
        self.model.eval()
        self.max_length = (self.meta.get("encoding") or {}).get("max_length") or 512
        self.pad = self.tokenizer.pad_token_id or 0

    def read(self, path: str | Path, what: str) -> list:
        """The labelled examples of `path` in this model's format (sentences or rows)."""
        if self.task == "ner":
            from trustfit.auditing import read_labelled_conll

            return read_labelled_conll(path, self.schema, self.meta, what).sentences
        from trustfit.data.text import read_text_corpus
        from trustfit.tasks.classify import check_labels

        m = self.meta
        corpus = read_text_corpus(path, text_column=m.get("text_column", "text"),
                                  label_column=m.get("label_column", "label"), pair_column=m.get("pair_column"))
        if any(e.label is None for e in corpus):
            raise DataError(f"{path}: the {what} needs labelled rows")
        check_labels(corpus, self.labels)
        return corpus.examples

    def _features(self, examples: Sequence[Any]):
        if self.task == "ner":
            from trustfit.data.schema import Corpus
            from trustfit.encode.batching import collate
            from trustfit.encode.tokenize import encode_corpus

            feats = encode_corpus(Corpus(list(examples)), self.tokenizer, self.schema, self.max_length, pack=False)
            return feats, [f.words[0][0] for f in feats], collate
        from trustfit.data.text import TextCorpus
        from trustfit.encode.text import collate_texts, encode_texts

        feats, _ = encode_texts(TextCorpus(list(examples)), self.tokenizer, {l: i for i, l in enumerate(self.labels)},
                                self.max_length)
        return feats, [f.index for f in feats], collate_texts

    @torch.no_grad()
    def losses(self, examples: Sequence[Any]) -> np.ndarray:
        """One loss per example, in order."""
        feats, owner, collate_fn = self._features(examples)
        total, count = np.zeros(len(examples)), np.zeros(len(examples))
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = collate_fn([feats[i] for i in idx], self.pad)
            labels = batch.pop("labels")
            logits = self.model(**batch).logits.float()
            if logits.dim() == 2:
                loss, n = torch.nn.functional.cross_entropy(logits, labels, reduction="none"), torch.ones(len(idx))
            else:
                tok = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
                loss, n = tok.sum(1), (labels != -100).sum(1).float()
            for j, i in enumerate(idx):
                total[owner[i]] += float(loss[j])
                count[owner[i]] += float(n[j])
        return total / np.maximum(count, 1)
