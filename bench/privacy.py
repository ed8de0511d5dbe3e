"""Privacy benchmark: what DP-SGD costs in dev F1 and time, and what it buys against membership
inference, each model trained in this run on CoNLL-2003 (3 epochs, dev = valid).

Runs: non-private (trustfit's defaults), then DP at epsilon 8, 3 and 1 (delta 1e-5, PRV, the DP
defaults: Poisson logical batch 256, physical 32, LoRA r 8 on every Linear of the encoder, lr 1e-2,
book-keeping clipping at 1.0).
Each model gets `trustfit audit privacy` (members: 2,000 training sentences; non-members: dev
sentences; one reference model, trained once, calibrates every target).
Step cost: the same 20 physical batches of 32 through a plain step, trustfit's book-keeping DP step
and the straightforward Opacus set-ups (make_private, hooks and ghost), all parameters trained,
fp32, each with noise and the optimizer step.

Goals (issue #9): dev F1 >= 83 at epsilon 8; DP step <= 1.5x a plain one.

    python bench/privacy.py [--quick] [--reuse] [--only step|quality]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, slice_conll, write_results  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TRUSTFIT = [sys.executable, "-m", "trustfit"]
OUT = RESULTS / "privacy"
EPSILONS = (8, 3, 1)


def train(args: list[str], out: Path, reuse: bool) -> dict:
    if not (reuse and (out / "train_summary.json").exists()):
        subprocess.run(TRUSTFIT + ["train", *args, "--out", str(out), "--overwrite", "--quiet"], check=True, env=ENV)
    s = json.loads((out / "train_summary.json").read_text())
    return {"train_s": round(s["train_seconds"], 1), "steps": s["steps"], "f1": 100 * s["dev"]["entity"]["micro"]["f1"]
            if "entity" in s["dev"] else None, "epochs": [round(100 * h["f1"], 2) for h in s["history"]],
            "privacy": {k: v for k, v in s.get("privacy", {}).items() if k not in ("history", "epochs")}}


def audit(model: Path, train_file: Path, holdout: Path, reference: Path | None, limit: int) -> dict:
    cmd = TRUSTFIT + ["audit", "privacy", "--model", str(model), "--train", str(train_file), "--holdout", str(holdout),
                      "--limit", str(limit), "--quiet"]
    if reference is not None:
        cmd += ["--reference", str(reference)]
    subprocess.run(cmd, check=True, env=ENV)
    r = json.loads((model / "audits" / "privacy" / "result.json").read_text())
    return {name: {"auc": a["auc"], "auc_ci": a["auc_ci"], "tpr_1pct": a["tpr_at_1pct_fpr"]}
            for name, a in r["membership"]["attacks"].items()} | {"reference": r["membership"]["reference"]["path"],
                                                                  "shift_auc": r["membership"].get("source_shift_auc")}


def quality(args) -> dict:
    train_file = slice_conll(DATA / "conll2003" / "train.txt", OUT / "train_slice.txt", 2000 if args.quick else None)
    dev = slice_conll(DATA / "conll2003" / "valid.txt", OUT / "dev_slice.txt", 600 if args.quick else None)
    common = ["--train", str(train_file), "--dev", str(dev), "--epochs", "1" if args.quick else "3"]
    runs, reference = {}, None
    for name, extra in [("eps8", ["--dp-epsilon", "8"]), ("non-private", []), ("eps1", ["--dp-epsilon", "1"]),
                        ("eps3", ["--dp-epsilon", "3"])]:
        t0 = time.perf_counter()
        runs[name] = train(common + extra, OUT / name, args.reuse)
        runs[name]["audit"] = audit(OUT / name, train_file, dev, reference, 300 if args.quick else 2000)
        reference = reference or Path(runs[name]["audit"]["reference"])
        runs[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(name, json.dumps(runs[name]), flush=True)
        (OUT / "quality.json").write_text(json.dumps(runs, indent=2))
    return runs


def step_cost(args) -> dict:
    """Seconds per physical batch of 32 (median of 20 after 3 warm-up steps), all in one process."""
    import statistics

    import torch

    from trustfit.data.conll import read_conll
    from trustfit.data.schema import LabelSchema
    from trustfit.encode.batching import collate
    from trustfit.encode.tokenize import encode_corpus
    from trustfit.models.backbone import load_token_classifier, load_tokenizer, resolve_model_source
    from trustfit.privacy.dp import per_example_loss, with_explicit_ids

    torch.manual_seed(0)
    corpus = read_conll(DATA / "conll2003" / "train.txt")
    corpus.sentences = corpus.sentences[:2000]
    schema = LabelSchema.from_corpus(corpus)
    src = resolve_model_source(None)
    tok = load_tokenizer(src)
    feats = encode_corpus(corpus, tok, schema, 512, pack=False)
    g = torch.Generator().manual_seed(0)
    batches = [collate([feats[int(i)] for i in torch.randperm(len(feats), generator=g)[:32]], 0) for _ in range(23)]

    def positions(b):
        return with_explicit_ids(b, ["position_ids", "token_type_ids"])

    def timed(step) -> float:
        times = []
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            step(b)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def fresh():
        m = load_token_classifier(src, schema)
        m.train()
        return m, torch.optim.AdamW(m.parameters(), lr=1e-4)

    out = {}
    m, opt = fresh()

    def plain(b):
        m(**b).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    out["plain"] = timed(plain)

    from opacus.optimizers import DPOptimizerFastGradientClipping

    from trustfit.privacy.bk import BookKeepingClipper
    m, opt = fresh()
    clipper = BookKeepingClipper(m, 1.0)
    bk_opt = DPOptimizerFastGradientClipping(opt, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=32)

    def bk_step(b):
        clipper.clipped_backward(per_example_loss(m, positions(b)))
        bk_opt.step()
        bk_opt.zero_grad(set_to_none=True)
    out["trustfit_bk"] = timed(bk_step)
    clipper.remove()

    from opacus import PrivacyEngine
    from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
    for mode in ("ghost", "hooks"):
        m, opt = fresh()
        data = torch.utils.data.DataLoader(list(range(64)), batch_size=32)
        engine = PrivacyEngine()
        parts = engine.make_private(module=m, optimizer=opt, data_loader=data, noise_multiplier=1.0, max_grad_norm=1.0,
                                    grad_sample_mode=mode, poisson_sampling=False,
                                    **({"criterion": torch.nn.CrossEntropyLoss()} if mode == "ghost" else {}))
        gm, dopt = parts[0], parts[1]

        def dp_step(b, gm=gm, dopt=dopt, mode=mode):
            loss = per_example_loss(gm, positions(b))
            if mode == "ghost":
                DPTensorFastGradientClipping(gm, dopt, loss, "mean").backward()
            else:
                loss.mean().backward()
            dopt.step()
            dopt.zero_grad(set_to_none=True)
        out[f"opacus_{mode}"] = timed(dp_step)
        del gm, dopt, parts
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2,000 training sentences, 1 epoch")
    ap.add_argument("--reuse", action="store_true", help="keep models already trained in bench/results/privacy")
    ap.add_argument("--only", choices=["step", "quality"])
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    if args.only != "quality":
        result["step"] = step_cost(args)
        (OUT / "step.json").write_text(json.dumps(result["step"], indent=2))
    elif (OUT / "step.json").exists():
        result["step"] = json.loads((OUT / "step.json").read_text())
    if args.only != "step":
        result["quality"] = quality(args)
    elif (OUT / "quality.json").exists():
        result["quality"] = json.loads((OUT / "quality.json").read_text())
    table = [["setting", "dev F1", "epsilon", "train s", "MIA AUC (loss)", "MIA AUC (calibrated)", "TPR@1%FPR (cal.)"]]
    for name, r in (result.get("quality") or {}).items():
        a = r["audit"]
        cal = a.get("calibrated (reference model)", {})
        table.append([name, f"{r['f1']:.2f}", f"{r['privacy'].get('epsilon', float('inf')):.2f}", f"{r['train_s']:.0f}",
                      f"{a['loss threshold']['auc']:.3f}", f"{cal.get('auc', float('nan')):.3f}",
                      f"{100 * cal.get('tpr_1pct', float('nan')):.2f} %"])
    if "step" in result:
        s = result["step"]
        for k, v in s.items():
            table.append([f"step: {k}", "", "", f"{v:.3f}", f"{v / s['plain']:.2f}x plain", "", ""])
    write_results("privacy", result, table)


if __name__ == "__main__":
    main()
