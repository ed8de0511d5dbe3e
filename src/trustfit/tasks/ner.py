"""Named-entity recognition as a task: CoNLL readers, IOB2 labels learned from train,
token-classification head, windows/context encoding, entity-level metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trustfit.config import TrainConfig
from trustfit.data.conll import read_conll, resolve_delimiter
from trustfit.data.schema import Corpus, LabelSchema
from trustfit.encode.batching import collate


def read_ner_corpus(path: str, cfg: TrainConfig, labelled: bool = True) -> Corpus:
    """Read a CoNLL file with the column/scheme/encoding options of `cfg`."""
    return read_conll(path, token_column=cfg.token_column, tag_column=cfg.tag_column if labelled else None,
                      scheme=cfg.scheme, encoding=cfg.encoding or "utf-8", delimiter=resolve_delimiter(cfg.delimiter))


class NerTask:
    select_metric = "f1"
    loss_fn = None

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.max_length: int | None = None
        self.notes: list[str] = []

    def load_data(self, labels: list[str] | None = None) -> None:
        """Read train (and dev); the labels are learned from train unless given (a federated
        client trains the server's label set, of which its own data may hold a part)."""
        cfg = self.cfg
        self.train = read_ner_corpus(cfg.train, cfg)
        self.load_eval(labels or list(LabelSchema.from_corpus(self.train).labels))

    def load_eval(self, labels: list[str]) -> None:
        """The label set and the dev file only (a federated server, which holds no training data)."""
        cfg = self.cfg
        self.schema = LabelSchema(tuple(labels))
        self.labels = list(self.schema.labels)
        self.dev = None
        if cfg.dev:
            self.dev = self.schema.check_corpus(read_ner_corpus(cfg.dev, cfg), unknown_to_o=cfg.unknown_tags == "o")

    @property
    def n_train_words(self) -> int:
        return self.train.n_words

    def build_model(self, source: str):
        from trustfit.models.backbone import load_token_classifier
        from trustfit.tasks import with_recipe

        return with_recipe(load_token_classifier(source, self.schema), self.cfg, self.notes)

    def encode(self, tokenizer, max_length: int) -> list:
        from trustfit.encode.tokenize import encode_corpus

        self.max_length = max_length
        c = self.cfg
        return encode_corpus(self.train, tokenizer, self.schema, max_length, c.context_tokens, c.stride,
                             pack=c.pack, pack_tokens=c.pack_tokens)

    @staticmethod
    def collate(features, pad_id: int) -> dict:
        return collate(features, pad_id)

    def _predictor(self, model, tokenizer, device, precision):
        from trustfit.predict.ner import NerPredictor

        c = self.cfg
        return NerPredictor(model, tokenizer, self.schema, c.context_tokens, self.max_length, c.eval_batch_size,
                            device=device, precision=precision, stride=c.stride, pack=c.pack,
                            pack_tokens=c.pack_tokens, decode=c.decode)

    def _metrics(self, model, tokenizer, device, precision):
        from trustfit.evaluate.ner import ner_metrics

        pred = self._predictor(model, tokenizer, device, precision).predict(self.dev)
        return ner_metrics([s.tags for s in self.dev], pred.tags, self.schema.labels)

    def evaluate(self, model, tokenizer, device, precision) -> dict[str, Any]:
        met = self._metrics(model, tokenizer, device, precision)
        e = met.entity["micro"]
        return {"f1": e["f1"], "precision": e["precision"], "recall": e["recall"], "token_accuracy": met.token_accuracy}

    def final_report(self, model, tokenizer, out: Path, device, precision) -> dict[str, Any]:
        metrics = self._metrics(model, tokenizer, device, precision)
        (out / "dev_metrics.json").write_text(json.dumps(metrics.to_json(), indent=2))
        return metrics.to_json()

    def meta(self) -> dict[str, Any]:
        train = getattr(self, "train", None)  # a federated server holds no training data
        return {"task": "ner", "labels": self.labels, "scheme_in": self.cfg.scheme,
                "train_has_documents": None if train is None else train.has_documents,
                "encoding": {"context_tokens": self.cfg.context_tokens, "max_length": self.max_length,
                             "stride": self.cfg.stride, "pack": self.cfg.pack, "pack_tokens": self.cfg.pack_tokens,
                             "decode": self.cfg.decode}}
