"""Score a trained model on a labelled file (what `trustfit evaluate` and the experiment
pipeline's evaluate stage share): entity- and token-level reports for NER; accuracy, macro-F1,
per class, confusion, calibration and the router's coverage curve for classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trustfit.errors import TrustfitError


def evaluate_file(model: str, data: str, predictions: str | Path | None = None, plots: str | Path | None = None,
                  scheme: str = "iob2", token_column: int = 0, tag_column: int = -1, encoding: str | None = None,
                  delimiter: str | None = None, unknown_tags: str = "error", format: str = "auto",
                  text_column: str | None = None, label_column: str | None = None, pair_column: str | None = None,
                  batch_size: int = 64, decode: str | None = None) -> tuple[str, Any, str]:
    """(task, metrics object with .to_json(), one-line headline); `decode` overrides the NER
    model's stored decoding (viterbi or argmax)."""
    from trustfit.models.backbone import model_task, read_meta, resolve_model_source

    task = model_task(model)
    if True:
        if task == "classify":
            from trustfit.evaluate.classify import classify_metrics, plot_confusion, plot_reliability
            from trustfit.predict.classify import ClassifierPredictor
            from trustfit.tasks.classify import check_labels
            from trustfit.data.text import read_text_corpus

            if decode:
                raise TrustfitError("--decode applies to NER models only (a classifier's label is its argmax)")
            predictor = ClassifierPredictor.from_dir(model, batch_size=batch_size)
            meta = read_meta(resolve_model_source(model))
            corpus = read_text_corpus(data, format=format, text_column=text_column or meta.get("text_column", "text"),
                                      label_column=label_column or meta.get("label_column", "label"),
                                      pair_column=pair_column or meta.get("pair_column"), encoding=encoding)
            check_labels(corpus, predictor.labels)
        else:
            from trustfit.data.conll import read_conll, resolve_delimiter
            from trustfit.predict.ner import NerPredictor

            predictor = NerPredictor.from_dir(model, batch_size=batch_size, **({"decode": decode} if decode else {}))
            corpus = read_conll(data, token_column=token_column, tag_column=tag_column, scheme=scheme,
                                encoding=encoding or "utf-8", delimiter=resolve_delimiter(delimiter))
            predictor.schema.check_corpus(corpus, unknown_to_o=unknown_tags == "o")
    if task == "classify":
        pred = predictor.predict(corpus)
        l2i = {l: i for i, l in enumerate(predictor.labels)}
        from trustfit.apps.router import coverage_curve, plot_coverage

        gold = [l2i[e.label] for e in corpus]
        metrics = classify_metrics(gold, pred.logits, predictor.labels, predictor.temperature)
        # the router's view: how many queries can be answered automatically at a given precision
        metrics.extra["coverage"] = coverage_curve(pred.probs, gold)
        if plots:
            plots = Path(plots)
            plots.mkdir(parents=True, exist_ok=True)
            plot_confusion(metrics, plots / "confusion_matrix.png")
            plot_reliability(metrics, plots / "reliability.png")
            plot_coverage(metrics.extra["coverage"], plots / "coverage_accuracy.png")
        if predictions:
            with Path(predictions).open("w", encoding="utf-8") as f:
                for i, e in enumerate(corpus):
                    lab, p = pred.top_k(i, 1)[0]
                    f.write(json.dumps({"line": e.line, "gold": e.label, "label": lab, "score": round(p, 4)},
                                       ensure_ascii=False) + "\n")
        at = metrics.extra["coverage"]["at_precision"]
        headline = (f"accuracy {100 * metrics.accuracy:.2f}, macro-F1 {100 * metrics.macro_f1:.2f}, "
                    f"answered at 95 % precision {100 * at['95']['coverage']:.1f} %, "
                    f"at 99 % {100 * at['99']['coverage']:.1f} %")
    else:
        from trustfit.evaluate.ner import ner_metrics, write_conll_predictions

        pred = predictor.predict(corpus)
        metrics = ner_metrics([s.tags for s in corpus], pred.tags, predictor.schema.labels)
        if predictions:
            write_conll_predictions(predictions, corpus.sentences, pred.tags)
        headline = f"entity F1 {100 * metrics.f1:.2f}"
    return task, metrics, headline
