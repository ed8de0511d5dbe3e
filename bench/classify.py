"""Classification benchmark: Hugging Face Trainer (AutoModelForSequenceClassification,
DataCollatorWithPadding) vs trustfit on the same model, splits and hyper-parameters, each side
in its own process, one after the other. Datasets: Financial PhraseBank 50Agree (deduplicated,
stratified 80/10/10 by `trustfit split`) and Banking77 (stratified 90/10 train/dev carved from
train). Reports accuracy, macro-F1 and words/s for both, and for Banking77 the share of dev
queries the router answers automatically at 95 % / 99 % precision (trustfit, calibrated).

    python bench/classify.py [--quick] [--datasets fpb,banking77] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, peak_rss_mb, run_child, write_results  # noqa: E402


def make_splits(name: str, quick: bool) -> dict[str, str]:
    from trustfit.data.split import split_corpus, write_splits
    from trustfit.data.text import read_text_corpus

    folder = RESULTS / "splits" / name
    if name == "fpb":
        c = read_text_corpus(DATA / "financial_phrasebank/Sentences_50Agree.txt")
        parts, rep = split_corpus(c, dev=0.1, test=0.1, seed=42)
    else:
        c = read_text_corpus(DATA / "banking77/train.csv", label_column="category")
        parts, rep = split_corpus(c, dev=0.1, test=0.0, seed=42)
    if quick:
        parts["train"] = parts["train"][:1500]
    paths = write_splits(parts, folder)
    (folder / "split_report.json").write_text(json.dumps(rep.to_json(), indent=2))
    return paths


def baseline(args) -> dict:
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)
    from transformers.utils import logging as hf_logging

    from trustfit.data.text import read_text_corpus
    from trustfit.evaluate.classify import classify_metrics
    from trustfit.models.backbone import default_model_path

    hf_logging.set_verbosity_error()
    train, dev = read_text_corpus(args.train), read_text_corpus(args.dev)
    labels = sorted(train.label_counts())
    l2i = {l: i for i, l in enumerate(labels)}
    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(path)

    def encode(c):
        enc = tok([e.text for e in c], truncation=True)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": l2i[e.label]} for i, e in enumerate(c)]

    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels),
                                                               id2label=dict(enumerate(labels)), label2id=l2i)
    targs = TrainingArguments(output_dir=str(RESULTS / "hf_tmp"), per_device_train_batch_size=args.batch_size,
                              per_device_eval_batch_size=64, learning_rate=args.lr, num_train_epochs=args.epochs,
                              lr_scheduler_type="linear", warmup_steps=0.1, weight_decay=0.01,
                              optim="adamw_torch_fused", save_strategy="no", eval_strategy="no", report_to=[],
                              logging_strategy="no", seed=args.seed, disable_tqdm=True, use_cpu=True)
    trainer = Trainer(model=model, args=targs, train_dataset=encode(train), data_collator=DataCollatorWithPadding(tok))
    t0 = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - t0
    out = trainer.predict(encode(dev))
    m = classify_metrics(out.label_ids, out.predictions, labels)
    return {"words_per_second": train.n_words * args.epochs / secs, "train_seconds": secs, "accuracy": m.accuracy,
            "macro_f1": m.macro_f1, "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()}


def trustfit_side(args) -> dict:

    from trustfit.apps.router import coverage_curve
    from trustfit.config import TrainConfig
    from trustfit.data.text import read_text_corpus
    from trustfit.predict.classify import ClassifierPredictor
    from trustfit.train.run import train

    out = RESULTS / f"classify_model_{args.name}"
    cfg = TrainConfig(task="classify", train=args.train, dev=args.dev, out=str(out), epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, calibrate=True, checkpoint_every=10**9,
                      **({} if args.layer_lr_decay is None else {"layer_lr_decay": args.layer_lr_decay}))
    s = train(cfg, overwrite=True, quiet=True)
    dev = s["dev"]
    res = {"words_per_second": s["words_per_second"], "train_seconds": s["train_seconds"],
           "accuracy": dev["accuracy"], "macro_f1": dev["macro_f1"], "ece": dev["ece"],
           "ece_uncalibrated": dev["uncalibrated"]["ece"], "temperature": dev["temperature"],
           "peak_rss_mb": peak_rss_mb(), "precision": s["precision"]}
    pred = ClassifierPredictor.from_dir(str(out))
    corpus = read_text_corpus(args.dev)
    p = pred.predict(corpus)
    gold = [pred.labels.index(e.label) for e in corpus]
    cov = coverage_curve(p.probs, gold)
    res["router_at_precision"] = cov["at_precision"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,500 training rows, 1 epoch")
    ap.add_argument("--datasets", default="fpb,banking77")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="default: 1e-4 for fpb, 3e-4 for banking77")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--layer-lr-decay", type=float, default=None, help="trustfit's layer-wise lr decay "
                    "(default: trustfit's default)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--side", choices=["baseline", "trustfit"], help=argparse.SUPPRESS)
    ap.add_argument("--train", help=argparse.SUPPRESS)
    ap.add_argument("--dev", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps(baseline(args) if args.side == "baseline" else trustfit_side(args)))
        return
    epochs = args.epochs or (1 if args.quick else 3)
    script = Path(__file__).resolve()
    result: dict = {"epochs": epochs, "batch_size": args.batch_size}
    rows = [["dataset", "side", "accuracy", "macro-F1", "words/s", "train s", "peak RSS MB"]]
    for name in args.datasets.split(","):
        lr = args.lr or (3e-4 if name == "banking77" else 1e-4)
        paths = make_splits(name, args.quick)
        common = ["--train", paths["train"], "--dev", paths["dev"], "--epochs", str(epochs), "--batch-size",
                  str(args.batch_size), "--lr", str(lr), "--seed", str(args.seed), "--name", name]
        decay = [] if args.layer_lr_decay is None else ["--layer-lr-decay", str(args.layer_lr_decay)]
        ours = run_child(script, common + ["--side", "trustfit"] + decay)
        base = None if args.skip_baseline else run_child(script, common + ["--side", "baseline"])
        result[name] = {"lr": lr, "trustfit": ours, "baseline_hf_trainer": base}
        for side, r in (("trustfit", ours), ("HF Trainer", base)):
            if r:
                rows.append([name, side, f"{100 * r['accuracy']:.2f}", f"{100 * r['macro_f1']:.2f}",
                             f"{r['words_per_second']:.0f}", f"{r['train_seconds']:.0f}", f"{r['peak_rss_mb']:.0f}"])
        if base:
            result[name]["speed_ratio"] = ours["words_per_second"] / base["words_per_second"]
            rows.append([name, "ratio", "", "", f"{result[name]['speed_ratio']:.2f}x", "", ""])
        if name == "banking77":
            at = ours["router_at_precision"]
            rows.append([name, "router answers at 95 % / 99 % precision",
                         f"{100 * at['95']['coverage']:.1f} % / {100 * at['99']['coverage']:.1f} %", "", "", "", ""])
        print(f"{name}: done", flush=True)
    write_results("classify_quick" if args.quick else "classify", result, rows)


if __name__ == "__main__":
    main()
