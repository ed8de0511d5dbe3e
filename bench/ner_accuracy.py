"""NER accuracy on text the model never saw: trustfit's default against the Hugging Face recipe,
several seeds each, judged on CoNLL-2003 dev and on a document-level hold-out carved from train.

    python bench/ner_accuracy.py                       # full train, 3 seeds x 2 recipes, 3 epochs
    python bench/ner_accuracy.py --train-sentences 7000 --seeds 1,2,3
    python bench/ner_accuracy.py --recipe lr3e-4=lr:3e-4,decode:argmax --recipes default,lr3e-4

The hold-out is the last `--holdout-share` of train's documents (later articles, as the test
set is later than train); the models train on the documents before it (the first
`--train-sentences` of them when given). Each (recipe, seed) runs in its own process and its
result is kept in bench/results/ner_accuracy/runs/, so an interrupted benchmark resumes.
Prints and writes bench/results/ner_accuracy.{json,md}: per recipe the mean and spread of dev
and hold-out entity F1 (strict IOB2 = conlleval), token accuracy, and how much the seeds
agree with each other on the hold-out (entity F1 of one seed's predictions against another's)."""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, parse_overrides, run_child, write_results  # noqa: E402

OUT = RESULTS / "ner_accuracy"
# trustfit config overrides per named recipe; "hf" is the transformers Trainer recipe (ner_train.hf_fit)
RECIPES: dict[str, dict] = {"default": {}, "hf": {}}


def split_documents(train: Path, holdout_share: float, n_sentences: int | None) -> tuple[Path, Path]:
    """Write the training part (documents before the hold-out, cut after `n_sentences`) and the
    hold-out (the last `holdout_share` of documents) as CoNLL files; return their paths."""
    docs = [d for d in train.read_text(encoding="utf-8").split("-DOCSTART-") if d.strip()]
    n_hold = max(1, round(len(docs) * holdout_share))
    head, hold = docs[:-n_hold], docs[-n_hold:]
    kept, n = [], 0
    for doc in head:
        if n_sentences and n >= n_sentences:
            break
        kept.append(doc)
        n += sum(1 for block in doc.split("\n\n") if block.strip() and not block.strip().startswith("-X-"))
    OUT.mkdir(parents=True, exist_ok=True)
    paths = OUT / f"train_{n_sentences or 'all'}.txt", OUT / f"holdout_{holdout_share:g}.txt"
    for path, part in zip(paths, (kept, hold)):
        path.write_text("".join("-DOCSTART-" + d for d in part), encoding="utf-8")
    return paths


def parse_recipe(text: str) -> tuple[str, dict]:
    """'name=key:value,key:value' -> (name, overrides); values are JSON where they parse."""
    name, _, body = text.partition("=")
    return name, parse_overrides(body)


def child(args) -> dict:
    """One (recipe, seed): train, then predict dev and the hold-out."""
    from trustfit.data.conll import read_conll
    from trustfit.evaluate.ner import ner_metrics

    dev, hold = read_conll(args.dev), read_conll(args.holdout)
    t0 = time.perf_counter()
    if args.recipe == "hf":
        from ner_train import HF_LR, hf_fit, hf_predict

        fitted = hf_fit(args.train, args.epochs, 32, HF_LR, args.seed)
        labels = fitted["schema"].labels
        preds = {"dev": hf_predict(fitted, dev), "holdout": hf_predict(fitted, hold)}
        info = {"train_seconds": fitted["train_seconds"]}
    else:
        from trustfit.config import TrainConfig
        from trustfit.predict.ner import NerPredictor
        from trustfit.train.run import train

        out = OUT / "models" / f"{args.recipe}-s{args.seed}"
        cfg = TrainConfig(train=args.train, dev=args.dev, out=str(out), epochs=args.epochs, seed=args.seed,
                          checkpoint_every=10**9, **json.loads(args.overrides))
        summary = train(cfg, overwrite=True, quiet=True)
        predictor = NerPredictor.from_dir(str(out))
        labels = predictor.schema.labels
        log_probs = {"dev": predictor.word_log_probs(dev), "holdout": predictor.word_log_probs(hold)}
        preds = {name: predictor.decode_tags(lp).tags for name, lp in log_probs.items()}
        info = {"train_seconds": summary["train_seconds"], "precision": summary["precision"],
                "history": summary["history"], "config": cfg.model_dump()}
        other = "argmax" if cfg.decode == "viterbi" else "viterbi"  # the same forward pass decoded the other way
        gold = {"dev": dev, "holdout": hold}
        info[f"decoded_{other}"] = {name: ner_metrics([s.tags for s in gold[name]],
                                                      predictor.decode_tags(lp, other).tags, labels).f1
                                    for name, lp in log_probs.items()}
    result = {"recipe": args.recipe, "seed": args.seed, "wall_seconds": time.perf_counter() - t0, **info}
    for name, corpus in (("dev", dev), ("holdout", hold)):
        m = ner_metrics([s.tags for s in corpus], preds[name], labels)
        result[name] = {"f1": m.f1, "token_accuracy": m.token_accuracy, "per_type": m.entity}
    result["holdout_tags"] = preds["holdout"]
    return result


def same_run(run: dict, overrides: dict, name: str) -> bool:
    """Whether a kept run is the one asked for now: same overrides and, for trustfit, every other
    setting still at today's default (a changed default makes it stale)."""
    if run.get("overrides") != overrides:
        return False
    if name == "hf":
        return True
    from trustfit.config import TrainConfig

    skip = {"train", "dev", "out", "seed", "epochs", "checkpoint_every", *overrides}
    today = TrainConfig(train=run["config"]["train"], out="-").model_dump()  # defaults as validators set them
    # a setting the kept run did not record did not exist then: it ran as today's default does
    return all(run["config"].get(k, v) == v for k, v in today.items() if k not in skip)


def agreement(runs: list[dict]) -> float | None:
    """Mean entity F1 of one seed's hold-out predictions scored against another seed's."""
    from trustfit.evaluate.ner import entity_scores

    pairs = [entity_scores(a["holdout_tags"], b["holdout_tags"])["micro"]["f1"]
             for a, b in itertools.combinations(runs, 2)]
    return statistics.mean(pairs) if pairs else None


def spread(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    sd = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {sd:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--recipes", default="default,hf", help="comma-separated recipe names")
    ap.add_argument("--recipe", action="append", default=[], metavar="NAME=KEY:VALUE,...",
                    help="define a trustfit recipe by config overrides, e.g. lr3=lr:3e-4")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-sentences", type=int, default=None, help="train on the first N sentences (whole "
                    "documents) before the hold-out; default all")
    ap.add_argument("--holdout-share", type=float, default=0.1, help="share of train's documents held out (the last)")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    for hidden in ("--child-recipe", "--overrides", "--train", "--dev", "--holdout"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_recipe:
        args.recipe = args.child_recipe
        print(json.dumps(child(args)))
        return

    recipes = {**RECIPES, **dict(parse_recipe(r) for r in args.recipe)}
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in recipes]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}: define them with --recipe NAME=KEY:VALUE")
    seeds = [int(s) for s in args.seeds.split(",")]
    train, hold = split_documents(DATA / "conll2003/train.txt", args.holdout_share, args.train_sentences)
    dev = DATA / "conll2003/valid.txt"
    runs_dir = OUT / "runs" / f"{args.train_sentences or 'all'}-e{args.epochs}-h{args.holdout_share:g}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for name in names:
        for seed in seeds:
            path = runs_dir / f"{name}-s{seed}.json"
            if path.exists() and same_run(json.loads(path.read_text()), recipes[name], name):
                run = json.loads(path.read_text())
            else:
                run = run_child(Path(__file__), ["--child-recipe", name, "--seed", str(seed),
                                                 "--overrides", json.dumps(recipes[name]), "--train", str(train),
                                                 "--dev", str(dev), "--holdout", str(hold),
                                                 "--epochs", str(args.epochs)])
                run["overrides"] = recipes[name]
                path.write_text(json.dumps(run))
            print(f"{name} seed {seed}: dev {100 * run['dev']['f1']:.2f}, hold-out {100 * run['holdout']['f1']:.2f} "
                  f"({run['wall_seconds']:.0f} s)", flush=True)
            results.setdefault(name, []).append(run)
    rows = [["recipe", "dev F1", "hold-out F1", "hold-out token acc.", "seed agreement", "train s (mean)"]]
    summary = {}
    for name, runs in results.items():
        summary[name] = {"overrides": recipes[name], "seeds": seeds,
                         "dev_f1": [r["dev"]["f1"] for r in runs], "holdout_f1": [r["holdout"]["f1"] for r in runs],
                         "holdout_token_accuracy": [r["holdout"]["token_accuracy"] for r in runs],
                         "seed_agreement": agreement(runs),
                         "train_seconds": [r["train_seconds"] for r in runs]}
        s = summary[name]
        agree = "-" if s["seed_agreement"] is None else f"{100 * s['seed_agreement']:.2f}"
        label = name + (f" ({', '.join(f'{k}={v}' for k, v in recipes[name].items())})" if recipes[name] else "")
        rows.append([label, spread(s["dev_f1"]), spread(s["holdout_f1"]), spread(s["holdout_token_accuracy"]),
                     agree, f"{statistics.mean(s['train_seconds']):.0f}"])
    result = {"train_file": str(train), "holdout_file": str(hold), "dev_file": str(dev), "epochs": args.epochs,
              "train_sentences": args.train_sentences, "holdout_share": args.holdout_share, "recipes": summary}
    write_results(f"ner_accuracy{args.tag}", result, rows)


if __name__ == "__main__":
    main()
