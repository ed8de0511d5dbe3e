"""Training benchmark: Hugging Face Trainer (run_ner.py recipe) vs trustfit, same model, data,
epochs and batch size, each at its own default learning rate unless --lr sets both (the HF
recipe 1e-4; trustfit 3e-4 with layer-wise decay), measured in the same run, each side in its
own process.

    python bench/ner_train.py            # full CoNLL-2003 train, 3 epochs (about 25 min)
    python bench/ner_train.py --quick    # 2,000-sentence slice, 1 epoch (under 3 min)

Prints and writes bench/results/ner_train{,_quick}.{json,md}: words/s of both and their ratio,
peak RSS, dev entity F1 (strict IOB2) after the same number of epochs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DATA, RESULTS, add_allocator_option, add_emulate_option, emulate_cpu, parse_overrides,  # noqa: E402
                     peak_rss_mb, run_child, slice_conll, use_allocator, write_results)


HF_LR = 1e-4  # the HF recipe's learning rate in every benchmark here
# optional HF Trainer variants, each a third side of the run (--baseline-KEY): what the Trainer is given
BASELINE_VARIANTS = {"bf16": "bf16=True", "grouped": "group_by_length=True"}


def hf_fit(train_path: str, epochs: int, batch_size: int, lr: float, seed: int, bf16: bool = False,
           group_by_length: bool = False) -> dict:
    """The run_ner.py recipe: transformers Trainer + DataCollatorForTokenClassification,
    first-sub-token labels, fused AdamW, linear schedule with 10 % warm-up (optionally bf16, or
    batches of similar lengths: the Trainer's group_by_length)."""
    import torch
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments, set_seed)
    from transformers.utils import logging as hf_logging

    from trustfit.data.conll import read_conll
    from trustfit.data.schema import LabelSchema
    from trustfit.models.backbone import default_model_path

    hf_logging.set_verbosity_error()
    train = read_conll(train_path)
    schema = LabelSchema.from_corpus(train)
    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    set_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(schema.labels),
                                                            id2label=schema.id2label, label2id=schema.label2id)
    targs = TrainingArguments(output_dir=str(RESULTS / "hf_tmp"), per_device_train_batch_size=batch_size,
                              per_device_eval_batch_size=64, learning_rate=lr, num_train_epochs=epochs,
                              lr_scheduler_type="linear", warmup_steps=0.1, weight_decay=0.01,
                              optim="adamw_torch_fused", save_strategy="no", eval_strategy="no", report_to=[],
                              logging_strategy="no", seed=seed, disable_tqdm=True, use_cpu=True,
                              dataloader_num_workers=0, bf16=bf16,
                              train_sampling_strategy="group_by_length" if group_by_length else "random")
    trainer = Trainer(model=model, args=targs, train_dataset=hf_encode(tok, schema, train),
                      data_collator=DataCollatorForTokenClassification(tok))
    t0 = time.perf_counter()
    trainer.train()
    return {"trainer": trainer, "tokenizer": tok, "schema": schema, "train_words": train.n_words,
            "train_seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}


def hf_encode(tok, schema, corpus) -> list[dict]:
    """Sentences as model inputs, each word labelled at its first sub-token only."""
    enc = tok([s.tokens for s in corpus], is_split_into_words=True, truncation=True)
    rows = []
    for i, s in enumerate(corpus):
        prev, labels = None, []
        for w in enc.word_ids(i):
            labels.append(-100 if w is None or w == prev or s.tags is None else schema.label2id[s.tags[w]])
            prev = w
        rows.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels})
    return rows


def hf_predict(fitted: dict, corpus) -> list[list[str]]:
    """Argmax tags of every labelled word (the recipe's evaluation; truncated words are lost)."""
    trainer = fitted["trainer"]
    trainer.args.train_sampling_strategy = "random"  # group_by_length would reorder the predictions too
    out = trainer.predict(hf_encode(fitted["tokenizer"], fitted["schema"], corpus))
    labels = fitted["schema"].labels
    return [[labels[p] for p, gold in zip(row, lab) if gold != -100]
            for row, lab in zip(out.predictions.argmax(-1), out.label_ids)]


def baseline(args) -> dict:
    from trustfit.data.conll import read_conll
    from trustfit.evaluate.ner import ner_metrics

    fitted = hf_fit(args.train, args.epochs, args.batch_size, args.lr or HF_LR, args.seed, args.baseline_bf16,
                    args.baseline_grouped)
    dev = read_conll(args.dev)
    m = ner_metrics([s.tags for s in dev], hf_predict(fitted, dev), fitted["schema"].labels)
    secs = fitted["train_seconds"]
    return {"words_per_second": fitted["train_words"] * args.epochs / secs, "train_seconds": secs, "dev_f1": m.f1,
            "peak_rss_mb": peak_rss_mb(), "torch_threads": fitted["torch_threads"], "bf16": args.baseline_bf16,
            "group_by_length": args.baseline_grouped}


def trustfit_side(args) -> dict:
    from trustfit.config import TrainConfig
    from trustfit.train.run import train_ner

    overrides = parse_overrides(args.set)
    cfg = TrainConfig(train=args.train, dev=args.dev, out=str(RESULTS / f"trustfit_model{args.tag}"),
                      epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      **({} if args.lr is None else {"lr": args.lr}),
                      precision=args.precision, checkpoint_every=10**9, pack=not args.no_pack,
                      **({} if args.context_tokens is None else {"context_tokens": args.context_tokens}),
                      **overrides)
    t0 = time.perf_counter()
    s = train_ner(cfg, overwrite=True, quiet=True)
    wall = time.perf_counter() - t0
    return {"words_per_second": s["words_per_second"], "train_seconds": s["train_seconds"], "wall_seconds": wall,
            "dev_f1": s["dev"]["entity"]["micro"]["f1"], "history": s["history"], "peak_rss_mb": peak_rss_mb(),
            "phase_seconds": s["phase_seconds"],
            "precision": s["precision"], "context_tokens": cfg.context_tokens, "context_share": cfg.context_share, "pack": cfg.pack,
            "pack_tokens": cfg.pack_tokens, "stride": cfg.stride, "overrides": overrides}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000-sentence slice, 1 epoch")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train-sentences", type=int, default=None)
    ap.add_argument("--dev-sentences", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help=f"both sides' lr (default: trustfit's own default, "
                    f"{HF_LR:g} for the HF recipe)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--context-tokens", type=int, default=None, help="default: trustfit's default")
    ap.add_argument("--no-pack", action="store_true", help="one input per sentence (default: packed documents)")
    ap.add_argument("--baseline-bf16", action="store_true", help="also run the HF Trainer with bf16=True")
    ap.add_argument("--baseline-grouped", action="store_true",
                    help="also run the HF Trainer with group_by_length=True (batches of similar lengths)")
    ap.add_argument("--set", default="", metavar="KEY:VALUE,...",
                    help="trustfit config overrides, e.g. pack_tokens:96,context_tokens:16,stride:16")
    add_emulate_option(ap)
    add_allocator_option(ap)
    ap.add_argument("--skip-baseline", action="store_true", help="only trustfit (the ratio is then not measured)")
    ap.add_argument("--name", default=None, help="results file name (default ner_train[_quick][_avx2])")
    ap.add_argument("--side", choices=["baseline", "trustfit"], help=argparse.SUPPRESS)
    ap.add_argument("--train", help=argparse.SUPPRESS)
    ap.add_argument("--dev", help=argparse.SUPPRESS)
    ap.add_argument("--tag", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        res = baseline(args) if args.side == "baseline" else trustfit_side(args)
        print(json.dumps(res))
        return

    emulate_cpu(args.emulate)
    use_allocator(args.allocator)
    epochs = args.epochs or (1 if args.quick else 3)
    n_train = args.train_sentences or (2000 if args.quick else None)
    n_dev = args.dev_sentences or (800 if args.quick else None)
    tag = ("_quick" if args.quick else "") + (f"_{args.emulate}" if args.emulate else "") + (
        f"_{args.allocator}" if args.allocator else "")
    train = slice_conll(DATA / "conll2003/train.txt", RESULTS / "slices/train.txt", n_train)
    dev = slice_conll(DATA / "conll2003/valid.txt", RESULTS / "slices/dev.txt", n_dev)
    common = ["--train", str(train), "--dev", str(dev), "--epochs", str(epochs), "--batch-size", str(args.batch_size),
              *(["--lr", str(args.lr)] if args.lr else []), "--seed", str(args.seed), "--tag", tag]
    script = Path(__file__).resolve()
    t0 = time.perf_counter()
    ours = run_child(script, common + ["--side", "trustfit", "--precision", args.precision]
                     + ([] if args.context_tokens is None else ["--context-tokens", str(args.context_tokens)])
                     + (["--no-pack"] if args.no_pack else []) + (["--set", args.set] if args.set else []))
    print(f"trustfit: {ours['words_per_second']:.0f} words/s, dev F1 {100 * ours['dev_f1']:.2f}", flush=True)
    base = None if args.skip_baseline else run_child(script, common + ["--side", "baseline"])
    variants = {key: run_child(script, common + ["--side", "baseline", f"--baseline-{key}"])
                for key in BASELINE_VARIANTS if getattr(args, f"baseline_{key}")}
    result = {"train_file": str(train), "dev_file": str(dev), "epochs": epochs, "batch_size": args.batch_size,
              "lr": args.lr, "trustfit": ours, "baseline_hf_trainer": base,
              **{f"baseline_hf_trainer_{key}": variants.get(key) for key in BASELINE_VARIANTS},
              "bench_seconds": time.perf_counter() - t0}
    rows = [["", "words/s", "dev entity F1 (strict IOB2)", "peak RSS MB", "train s"],
            [f"trustfit ({ours['precision']}, context {ours['context_tokens']}"
             f"{'' if ours.get('context_share', 1) == 1 else ' on ' + format(ours['context_share'], '.0%') + ' of packs'}, "
             f"{'packs of ' + str(ours['pack_tokens']) if ours['pack'] else 'per sentence'})", f"{ours['words_per_second']:.0f}",
             f"{100 * ours['dev_f1']:.2f}", f"{ours['peak_rss_mb']:.0f}", f"{ours['train_seconds']:.0f}"]]
    if base:
        result["speed_ratio"] = ours["words_per_second"] / base["words_per_second"]
        rows.append(["HF Trainer (run_ner recipe)", f"{base['words_per_second']:.0f}", f"{100 * base['dev_f1']:.2f}",
                     f"{base['peak_rss_mb']:.0f}", f"{base['train_seconds']:.0f}"])
        rows.append(["ratio trustfit / baseline", f"{result['speed_ratio']:.2f}x", "", "", ""])
    for key, other in variants.items():
        result[f"speed_ratio_vs_{key}"] = ours["words_per_second"] / other["words_per_second"]
        rows.append([f"HF Trainer, {BASELINE_VARIANTS[key]}", f"{other['words_per_second']:.0f}",
                     f"{100 * other['dev_f1']:.2f}", f"{other['peak_rss_mb']:.0f}", f"{other['train_seconds']:.0f}"])
        rows.append([f"ratio trustfit / {key} baseline", f"{result[f'speed_ratio_vs_{key}']:.2f}x", "", "", ""])
    write_results(args.name or f"ner_train{tag}", result, rows)


if __name__ == "__main__":
    main()
