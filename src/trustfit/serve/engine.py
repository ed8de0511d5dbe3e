"""The model behind the server: loads a trained folder once, predicts a batch of texts into
the same JSON as `trustfit predict` (plus the router's decision when an answers file is given),
optionally int8-quantised for CPU serving, and explains one text on demand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trustfit.errors import ModelError
from trustfit.predict.runtime import use_runtime
from trustfit.serve.settings import ServeSettings


class Engine:
    def __init__(self, settings: ServeSettings) -> None:
        from trustfit.models.backbone import read_meta, resolve_model_source

        self.settings = settings
        src = resolve_model_source(settings.model)
        self.meta = read_meta(src)
        self.task = self.meta.get("task", "ner")
        self.folder = Path(src)
        if self.task == "classify":
            from trustfit.predict.classify import ClassifierPredictor

            if self.meta.get("pair_column"):
                raise ModelError(f"{settings.model}: a text-pair model; the server takes single texts")
            self.predictor = ClassifierPredictor.from_dir(src, batch_size=settings.max_batch)
            self.labels = list(self.predictor.labels)
        else:
            from trustfit.predict.ner import NerPredictor

            self.predictor = NerPredictor.from_dir(src, batch_size=settings.max_batch)
            self.labels = list(self.predictor.schema.labels)
        self._float_model = self.predictor.model
        use_runtime(self.predictor, "int8" if settings.quantize == "int8" else settings.runtime)
        self.answers = None
        if settings.answers:
            if self.task != "classify":
                raise ModelError("--answers turns intents into replies: it needs a classifier, this is an NER model")
            from trustfit.apps.router import load_answers

            self.answers = load_answers(Path(settings.answers), self.labels)
        self.tokenizer = self.predictor.tokenizer
        self._explainable = None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """One result per text, in order."""
        if self.task == "classify":
            from trustfit.apps.router import route
            from trustfit.data.text import TextCorpus, TextExample
            from trustfit.predict.classify import classify_record

            corpus = TextCorpus([TextExample(t, None, None, i + 1, "<request>") for i, t in enumerate(texts)], "<request>")
            pred = self.predictor.predict(corpus)
            out = [classify_record(t, pred, i, self.settings.top_k) for i, t in enumerate(texts)]
            if self.answers is not None:
                for rec, r in zip(out, route(pred.probs, self.labels, self.settings.threshold, self.answers,
                                             self.settings.top_k)):
                    rec["route"] = r.to_json()
            return out
        from trustfit.predict.ner import corpus_from_lines, ner_record

        corpus = corpus_from_lines(texts, source="<request>")
        pred = self.predictor.predict(corpus)
        out = []
        for s, tags, scores in zip(corpus.sentences, pred.tags, pred.scores):
            rec = ner_record(s, tags, scores)
            rec.pop("line", None)
            out.append(rec)
        return out

    @property
    def explainable(self):
        """The explanation view over the float model (gradients need it even when serving int8)."""
        if self._explainable is None:
            from trustfit.explain.model import ClassifierExplainable, NerExplainable

            view = ClassifierExplainable if self.task == "classify" else NerExplainable
            self._explainable = view.from_predictor(self.predictor, model=self._float_model)
        return self._explainable

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"task": self.task, "labels": self.labels,
                                "base_model": self.meta.get("base_model"), "quantize": self.settings.quantize,
                                "runtime": self.settings.runtime,
                                "router": self.answers is not None}
        for name, key in (("train_summary.json", "training"), ("dev_metrics.json", "dev_metrics"),
                          ("card.json", "card")):
            p = self.folder / name
            if p.exists():
                data = json.loads(p.read_text())
                if key == "training":
                    data = {k: v for k, v in data.items() if k not in ("history", "param_checksum_by_rank")}
                info[key] = data
        return info
