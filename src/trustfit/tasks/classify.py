"""Sequence classification as a task: CSV/TSV/JSONL/FPB readers, labels learned from train,
sequence-classification head, optional class-weighted loss, accuracy/macro-F1/calibration
metrics, optional temperature scaling fitted on dev."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trustfit.config import TrainConfig
from trustfit.data.text import TextCorpus, read_text_corpus
from trustfit.encode.text import collate_texts
from trustfit.errors import DataError, join_problems


def read_classify_corpus(path: str, cfg: TrainConfig, labelled: bool = True) -> TextCorpus:
    return read_text_corpus(path, format=cfg.format, text_column=cfg.text_column,
                            label_column=cfg.label_column if labelled else None, pair_column=cfg.pair_column,
                            encoding=cfg.encoding)


def check_labels(corpus: TextCorpus, labels: list[str]) -> None:
    """Every label of `corpus` must be one the model knows."""
    known = set(labels)
    bad = [f"{e.source}:{e.line}: label {e.label!r}" for e in corpus.examples if e.label not in known]
    if bad:
        unknown = sorted({e.label for e in corpus.examples if e.label not in known})
        raise DataError(join_problems(
            f"{corpus.source}: {len(bad)} rows have labels never seen in training ({', '.join(unknown)}); "
            f"the model knows {', '.join(labels)}", bad))


class ClassifyTask:
    select_metric = "macro_f1"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.max_length: int | None = None
        self.notes: list[str] = []
        self.temperature = 1.0
        self.truncated = 0
        self.loss_fn = None

    def load_data(self, labels: list[str] | None = None) -> None:
        """Read train (and dev); the labels are train's unless given (a federated client trains
        the server's label set)."""
        cfg = self.cfg
        self.train = read_classify_corpus(cfg.train, cfg)
        labels = list(labels) if labels else sorted(self.train.label_counts())
        if len(labels) < 2:
            raise DataError(f"{cfg.train}: only one label ({', '.join(labels)}); classification needs two or more")
        self.load_eval(labels)
        if cfg.class_weights:
            counts = self.train.label_counts()
            w = np.array([len(self.train) / (len(self.labels) * counts[l]) for l in self.labels], dtype=np.float32)
            self.class_weight = w.tolist()

            def weighted_loss(model, batch):
                import torch

                labels = batch["labels"]
                logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
                weight = torch.tensor(w, device=logits.device)
                return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)

            self.loss_fn = weighted_loss

    @property
    def n_train_words(self) -> int:
        return self.train.n_words

    def load_eval(self, labels: list[str]) -> None:
        """The label set and the dev file only (a federated server, which holds no training data)."""
        self.labels = list(labels)
        self.label2id = {l: i for i, l in enumerate(self.labels)}
        self.dev = None
        if self.cfg.dev:
            self.dev = read_classify_corpus(self.cfg.dev, self.cfg)
            check_labels(self.dev, self.labels)

    def build_model(self, source: str):
        from trustfit.models.backbone import load_sequence_classifier
        from trustfit.tasks import with_recipe

        return with_recipe(load_sequence_classifier(source, self.labels), self.cfg, self.notes)

    def encode(self, tokenizer, max_length: int) -> list:
        from trustfit.encode.text import encode_texts

        self.max_length = max_length
        feats, self.truncated = encode_texts(self.train, tokenizer, self.label2id, max_length)
        return feats

    @staticmethod
    def collate(features, pad_id: int) -> dict:
        return collate_texts(features, pad_id)

    def _logits(self, model, tokenizer, device, precision) -> np.ndarray:
        from trustfit.predict.classify import ClassifierPredictor

        p = ClassifierPredictor(model, tokenizer, self.labels, 1.0, self.max_length, self.cfg.eval_batch_size,
                                device=device, precision=precision)
        return p.logits(self.dev)[0]

    def evaluate(self, model, tokenizer, device, precision) -> dict[str, Any]:
        from trustfit.evaluate.classify import classify_metrics

        gold = [self.label2id[e.label] for e in self.dev]
        m = classify_metrics(gold, self._logits(model, tokenizer, device, precision), self.labels)
        return {"macro_f1": m.macro_f1, "accuracy": m.accuracy, "ece": m.ece}

    def final_report(self, model, tokenizer, out: Path, device, precision) -> dict[str, Any]:
        from trustfit.evaluate.classify import classify_metrics, fit_temperature, plot_confusion, plot_reliability

        gold = [self.label2id[e.label] for e in self.dev]
        logits = self._logits(model, tokenizer, device, precision)
        raw = classify_metrics(gold, logits, self.labels)
        report = {"uncalibrated": raw.to_json()}
        final = raw
        if self.cfg.calibrate:
            self.temperature = fit_temperature(logits, gold)
            final = classify_metrics(gold, logits, self.labels, self.temperature)
            report["calibrated"] = final.to_json()
        report.update(final.to_json())
        (out / "dev_metrics.json").write_text(json.dumps(report, indent=2))
        plot_confusion(final, out / "confusion_matrix.png")
        plot_reliability(final, out / "reliability.png")
        return report

    def meta(self) -> dict[str, Any]:
        m = {"task": "classify", "labels": self.labels, "temperature": self.temperature,
             "encoding": {"max_length": self.max_length}, "text_column": self.cfg.text_column,
             "label_column": self.cfg.label_column, "pair_column": self.cfg.pair_column,
             "truncated_train_examples": self.truncated}
        if self.cfg.class_weights:
            m["class_weights"] = dict(zip(self.labels, self.class_weight))
        return m
