"""`trustfit train` and `trustfit evaluate`: fine-tune, then score on a labelled file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from trustfit.errors import TrustfitError
from trustfit.cli.common import Task, app, fail


@app.command()
def train(
    train: Optional[str] = typer.Option(None, "--train", help="training file (CoNLL columns)"),
    dev: Optional[str] = typer.Option(None, "--dev", help="dev file for evaluation, early stopping and best model"),
    out: Optional[str] = typer.Option(None, "--out", help="output folder (HF model + reports + checkpoints)"),
    task: Optional[Task] = typer.Option(None, "--task", help="ner (default) or classify"),
    model: Optional[str] = typer.Option(None, "--model", help="HF folder or hub id (default: packaged all-MiniLM-L6-v2)"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/YAML file with any of these options"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    micro_batch_tokens: Optional[int] = typer.Option(None, "--micro-batch-tokens", help="run a batch in passes of at "
                                                     "most this many padded sub-tokens: the same step, less activation "
                                                     "memory (e.g. 2048; default one pass)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="peak learning rate of the head (3e-4 for ner and classify, "
                                       "with --layer-lr-decay 0.8; DP: 1e-2 LoRA / 5e-3 otherwise; federated: 5e-4)"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    layer_lr_decay: Optional[float] = typer.Option(None, "--layer-lr-decay", help="layer l of L learns at lr x "
                                                   "decay^(L+1-l) (0.8; 1 = one rate for all; DP/federated: 1)"),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="evaluate and save a moving average of the "
                                              "weights, e.g. 0.999 (0 = off)"),
    attention_dropout: Optional[float] = typer.Option(None, "--attention-dropout", help="dropout on attention "
                                                      "probabilities (ner: 0; classify and DP: the model's own, 0.1)"),
    decode: Optional[str] = typer.Option(None, "--decode", help="NER: viterbi (IOB2-constrained, default) or argmax"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (bf16 where native), fp32 or bf16"),
    context_tokens: Optional[int] = typer.Option(None, "--context-tokens", help="NER: document context per side beyond "
                                                  "the packed sentences (32; 0: packs only, 2x faster on CPU)"),
    context_share: Optional[float] = typer.Option(None, "--context-share", help="NER: share of packs trained with "
                                                  "their margins, drawn each epoch (1 = all; the rest train without)"),
    context_from_epoch: Optional[int] = typer.Option(None, "--context-from-epoch", help="NER: train without "
                                                     "margins before this epoch (0-based; -1, the default: the last "
                                                     "epoch only; 0: every epoch)"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="encoder input limit (default: model's)"),
    pack: Optional[bool] = typer.Option(None, "--pack/--no-pack",
                                        help="NER: pack consecutive sentences of a document into "
                                        "one input (they see each other)"),
    pack_tokens: Optional[int] = typer.Option(None, "--pack-tokens", help="NER: target sub-tokens per packed input"),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="iob1, iob2, bioes or bilou"),
    token_column: Optional[int] = typer.Option(None, "--token-column"),
    tag_column: Optional[int] = typer.Option(None, "--tag-column"),
    encoding: Optional[str] = typer.Option(None, "--encoding"),
    delimiter: Optional[str] = typer.Option(None, "--delimiter", help="column separator: tab (default: whitespace)"),
    unknown_tags: Optional[str] = typer.Option(None, "--unknown-tags", help="error (default) or o"),
    format: Optional[str] = typer.Option(None, "--format", help="classify: auto, csv, tsv, jsonl or fpb"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="classify: text column (text)"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="classify: label column (label)"),
    pair_column: Optional[str] = typer.Option(None, "--pair-column", help="classify: second text column"),
    class_weights: Optional[bool] = typer.Option(None, "--class-weights/--no-class-weights",
                                                 help="classify: inverse-frequency class weights in the loss"),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate",
                                             help="classify: fit temperature scaling on dev"),
    adversarial: Optional[str] = typer.Option(None, "--adversarial", help="none, fgm, pgd or freelb (embedding space)"),
    adv_epsilon: Optional[float] = typer.Option(None, "--adv-epsilon", help="perturbation radius, L2 per example (1.0)"),
    adv_alpha: Optional[float] = typer.Option(None, "--adv-alpha", help="PGD/FreeLB step size (0.3)"),
    adv_steps: Optional[int] = typer.Option(None, "--adv-steps", help="PGD/FreeLB steps K (3)"),
    adv_start_epoch: Optional[int] = typer.Option(None, "--adv-start-epoch", help="first adversarial epoch, 0-based"),
    adv_module: Optional[str] = typer.Option(None, "--adv-module", help="module to perturb (default: input embeddings)"),
    augment: Optional[str] = typer.Option(None, "--augment", help="families mixed into each epoch: typo,case,punct,"
                                          "entity-swap,entity-novel"),
    augment_rate: Optional[float] = typer.Option(None, "--augment-rate", help="perturbed copies per epoch, share of examples (0.3)"),
    cda: Optional[str] = typer.Option(None, "--cda", help="counterfactual augmentation: identity-term lists swapped "
                                      "each epoch (gender,names,religion,nationality or a term list file)"),
    cda_rate: Optional[float] = typer.Option(None, "--cda-rate", help="share of examples with a swappable term "
                                             "that are swapped each epoch (0.5)"),
    dp_epsilon: Optional[float] = typer.Option(None, "--dp-epsilon", help="DP-SGD to this epsilon: noise from the "
                                               "planned steps; training stops before it is exceeded"),
    dp_delta: Optional[float] = typer.Option(None, "--dp-delta", help="DP delta, below 1/N (1e-5)"),
    dp_noise: Optional[float] = typer.Option(None, "--dp-noise", help="DP noise multiplier (instead of --dp-epsilon, "
                                             "or with it as a budget)"),
    dp_max_grad_norm: Optional[float] = typer.Option(None, "--dp-max-grad-norm", help="per-example clipping norm (1.0)"),
    dp_accountant: Optional[str] = typer.Option(None, "--dp-accountant", help="prv (default) or rdp"),
    dp_clipping: Optional[str] = typer.Option(None, "--dp-clipping", help="bk (book-keeping, default: one backward "
                                              "pass) or ghost (Opacus ghost clipping)"),
    dp_train: Optional[str] = typer.Option(None, "--dp-train", help="trained under DP: lora (default; saved "
                                           "merged), all, no-embeddings or top-N"),
    dp_batch_size: Optional[int] = typer.Option(None, "--dp-batch-size", help="expected Poisson batch under DP "
                                                "(256); --batch-size is then the physical batch"),
    canaries: Optional[int] = typer.Option(None, "--canaries", help="insert N secret-like canary sentences "
                                           "(recorded in OUT/canaries.json for `audit privacy`)"),
    canary_repeats: Optional[int] = typer.Option(None, "--canary-repeats", help="copies of each canary (1)"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="steps between evaluations (default: epoch)"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every"),
    patience: Optional[int] = typer.Option(None, "--patience", help="early stopping patience (evaluations)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace whatever --out holds"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or tables"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the training summary here"),
    track: str = typer.Option("none", "--track", help="none, tensorboard (OUT/tensorboard) or mlflow (OUT/mlruns)"),
) -> None:
    """Fine-tune a pretrained encoder; the best dev model is saved in --out in HF format."""
    from trustfit.config import build_config
    from trustfit.train.run import train as run_training

    try:
        cfg = build_config(config, dict(
            task=task.value if task else None, train=train, dev=dev, out=out, model=model, epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, micro_batch_tokens=micro_batch_tokens, lr=lr, seed=seed,
            layer_lr_decay=layer_lr_decay, ema_decay=ema_decay,
            attention_dropout=attention_dropout, decode=decode, precision=precision, context_tokens=context_tokens,
            context_share=context_share, context_from_epoch=context_from_epoch,
            max_length=max_length, pack=pack, pack_tokens=pack_tokens, scheme=scheme, token_column=token_column, tag_column=tag_column,
            encoding=encoding, delimiter=delimiter, unknown_tags=unknown_tags, eval_every=eval_every,
            checkpoint_every=checkpoint_every, patience=patience, format=format, text_column=text_column,
            label_column=label_column, pair_column=pair_column, class_weights=class_weights, calibrate=calibrate,
            adversarial=adversarial, adv_epsilon=adv_epsilon, adv_alpha=adv_alpha, adv_steps=adv_steps,
            adv_start_epoch=adv_start_epoch, adv_module=adv_module, augment=augment, augment_rate=augment_rate,
            cda=cda, cda_rate=cda_rate, dp_epsilon=dp_epsilon, dp_delta=dp_delta, dp_noise=dp_noise,
            dp_max_grad_norm=dp_max_grad_norm, dp_accountant=dp_accountant, dp_clipping=dp_clipping, dp_train=dp_train,
            dp_batch_size=dp_batch_size, canaries=canaries, canary_repeats=canary_repeats))
        from trustfit.train.tracking import make_tracker

        tracker = make_tracker(track, cfg.out, params=cfg.model_dump())
        try:
            summary = run_training(cfg, resume=resume, overwrite=overwrite, quiet=quiet,
                                   extra_plugins=[tracker] if tracker else None)
        finally:
            if tracker:
                tracker.close()
    except TrustfitError as e:
        fail(e)
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2))
    if not quiet and "dev" in summary:
        _render(summary["task"], summary["dev"])
    if "adversarial" in summary:
        a = summary["adversarial"]
        typer.echo(f"adversarial training ({a['method']}): {a['extra_forward_per_step']:.0f} extra forward and "
                   f"{a['extra_backward_per_step']:.0f} extra backward passes per step, "
                   f"{a['seconds_per_step']:.3f} s per step", err=True)
    if "privacy" in summary:
        p = summary["privacy"]
        typer.echo(f"differential privacy: epsilon {p['epsilon']:.3f} at delta {p['delta']:g} ({p['accountant']}), "
                   f"noise {p['noise_multiplier']:.3f}, sample rate {p['sample_rate']:.4f} (Poisson), "
                   f"{p['steps']} steps, clipping {p['max_grad_norm']:g}"
                   + (" - stopped at the budget" if p["stopped_by_budget"] else ""), err=True)
    typer.echo(f"model saved to {summary['out']} ({summary['steps']} steps, "
               f"{summary['words_per_second']:.0f} words/s)", err=True)


def _render(task: str, metrics: dict) -> None:
    if task == "classify":
        from trustfit.evaluate.classify import ClassifyMetrics, render_classify

        fields = ClassifyMetrics.__dataclass_fields__
        render_classify(ClassifyMetrics(**{k: v for k, v in metrics.items() if k in fields}))
    else:
        from trustfit.evaluate.ner import NerMetrics, render_metrics

        render_metrics(NerMetrics(**metrics))


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    data: str = typer.Option(..., "--data", help="labelled file (CoNLL for NER; CSV/TSV/JSONL/FPB to classify)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics JSON here"),
    predictions: Optional[Path] = typer.Option(None, "--predictions",
                                               help="NER: `token gold pred` lines; classify: JSONL per row"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="classify: folder for confusion/reliability PNGs"),
    scheme: str = typer.Option("iob2", "--scheme"),
    token_column: int = typer.Option(0, "--token-column"),
    tag_column: int = typer.Option(-1, "--tag-column"),
    encoding: Optional[str] = typer.Option(None, "--encoding"),
    delimiter: Optional[str] = typer.Option(None, "--delimiter"),
    unknown_tags: str = typer.Option("error", "--unknown-tags", help="error (default) or o"),
    format: str = typer.Option("auto", "--format", help="classify: auto, csv, tsv, jsonl or fpb"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="classify (default: as trained)"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="classify (default: as trained)"),
    pair_column: Optional[str] = typer.Option(None, "--pair-column", help="classify (default: as trained)"),
    batch_size: int = typer.Option(64, "--batch-size"),
    decode: Optional[str] = typer.Option(None, "--decode", help="NER: viterbi or argmax (default: as trained)"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Score a trained model on a labelled file: entity- and token-level reports (NER), or
    accuracy, macro-F1, per class, confusion matrix and calibration (classification)."""
    from trustfit.evaluate.run import evaluate_file

    try:
        task, metrics, headline = evaluate_file(
            model, data, predictions=predictions, plots=plots, scheme=scheme, token_column=token_column,
            tag_column=tag_column, encoding=encoding, delimiter=delimiter, unknown_tags=unknown_tags, format=format,
            text_column=text_column, label_column=label_column, pair_column=pair_column, batch_size=batch_size,
            decode=decode)
    except TrustfitError as e:
        fail(e)
    if json_out:
        json_out.write_text(json.dumps(metrics.to_json(), indent=2))
    if quiet:
        typer.echo(headline)
    else:
        _render(task, metrics.to_json())
        if task == "classify":
            typer.echo(headline)
