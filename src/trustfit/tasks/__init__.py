"""Tasks: what differs between NER and classification (data, labels, head, encoding, metrics),
behind one small interface that the generic runner (train/run.py) drives.

A task has `labels`, `select_metric`, and the methods load_data(), build_model(source),
encode(tokenizer, max_length), collate(features, pad_id), loss_fn (or None),
evaluate(model, tokenizer, device, precision) -> dict with the selection metric,
final_report(model, tokenizer, out, device, precision) -> dict, and meta() -> dict."""

from __future__ import annotations

from trustfit.config import TrainConfig


def make_task(cfg: TrainConfig):
    if cfg.task == "ner":
        from trustfit.tasks.ner import NerTask

        return NerTask(cfg)
    from trustfit.tasks.classify import ClassifyTask

    return ClassifyTask(cfg)
