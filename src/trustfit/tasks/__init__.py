"""Tasks: what differs between NER and classification (data, labels, head, encoding, metrics),
behind one small interface that the generic runner (train/run.py) drives.

A task has `labels`, `select_metric`, `notes` (what building its model could not do as asked),
and the methods load_data(), build_model(source) (with the recipe's attention dropout),
encode(tokenizer, max_length), collate(features, pad_id), loss_fn (or None),
evaluate(model, tokenizer, device, precision) -> dict with the selection metric,
final_report(model, tokenizer, out, device, precision) -> dict, and meta() -> dict."""

from __future__ import annotations

from trustfit.config import TrainConfig


def with_recipe(model, cfg: TrainConfig, notes: list[str]):
    """`model` as the recipe trains it: the attention dropout of `cfg` (None: the model's own) set
    wherever the task's model is built (a run, a federated party); a model without one trustfit
    can set keeps its own, and `notes` says so once."""
    if cfg.attention_dropout is not None:
        from trustfit.models.backbone import set_attention_dropout

        note = (f"attention_dropout {cfg.attention_dropout}: {type(model).__name__} has no attention dropout trustfit "
                "can set (an nn.Dropout inside an *Attention module); it keeps its own")
        if not set_attention_dropout(model, cfg.attention_dropout) and note not in notes:
            notes.append(note)
    return model


def make_task(cfg: TrainConfig):
    if cfg.task == "ner":
        from trustfit.tasks.ner import NerTask

        return NerTask(cfg)
    from trustfit.tasks.classify import ClassifyTask

    return ClassifyTask(cfg)
