"""Explanation benchmark: every method (ig, gxi, shap, lime, random) explains the same 200
Financial PhraseBank dev predictions and the same 200 CoNLL-2003 dev entities of the packaged
model fine-tuned by trustfit, in one run; comprehensiveness, sufficiency, stability (2 seeds,
1 typo) and ms per explanation per method, with LIME (what users reach for) and random (the
floor) as the baselines in the same table.

    python bench/explain.py [--n 200] [--quick] [--fpb-model DIR] [--conll-model DIR]

Without a model folder it trains one first (FPB: 3 epochs, lr 3e-4, calibrated; CoNLL-2003:
1 epoch, the `make demo` model) and reuses it on later runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, peak_rss_mb, write_results  # noqa: E402

TRUSTFIT = [sys.executable, "-m", "trustfit"]


def ensure_models(args) -> tuple[Path, Path, Path]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    fpb_data = RESULTS / "explain" / "fpb_data"
    if not (fpb_data / "dev.jsonl").exists():
        subprocess.run(TRUSTFIT + ["split", "--input", str(DATA / "financial_phrasebank/Sentences_50Agree.txt"),
                                   "--out", str(fpb_data)], check=True, env=env)
    fpb = Path(args.fpb_model) if args.fpb_model else RESULTS / "explain" / "fpb_model"
    if not (fpb / "trustfit.json").exists():
        subprocess.run(TRUSTFIT + ["train", "--task", "classify", "--train", str(fpb_data / "train.jsonl"), "--dev",
                                   str(fpb_data / "dev.jsonl"), "--out", str(fpb), "--lr", "3e-4", "--calibrate",
                                   "--overwrite", "--quiet"], check=True, env=env)
    conll = Path(args.conll_model) if args.conll_model else RESULTS / "explain" / "conll_model"
    if not (conll / "trustfit.json").exists():
        subprocess.run(TRUSTFIT + ["train", "--train", str(DATA / "conll2003/train.txt"), "--dev",
                                   str(DATA / "conll2003/valid.txt"), "--out", str(conll), "--epochs", "1",
                                   "--overwrite", "--quiet"], check=True, env=env)
    return fpb, fpb_data / "dev.jsonl", conll


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="20 explanations per task")
    ap.add_argument("--fpb-model")
    ap.add_argument("--conll-model")
    ap.add_argument("--methods", default="ig,gxi,shap,lime,random")
    args = ap.parse_args()
    n = 20 if args.quick else args.n
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fpb, fpb_dev, conll = ensure_models(args)
    from trustfit.explain.audit import run_explain_audit

    import torch

    results, table = {}, [["task", "method", "comprehensiveness", "sufficiency", "stability 2 seeds",
                           "stability 1 typo", "ms / explanation (median)", "forward passes", "time vs LIME"]]
    for task, model, data in (("FPB sentiment", fpb, fpb_dev), ("CoNLL-2003 NER", conll, DATA / "conll2003/valid.txt")):
        t0 = time.perf_counter()
        res = run_explain_audit(str(model), str(data), RESULTS / "explain" / task.split()[0].lower(),
                                args.methods.split(","), n=n, seed=0, quiet=True)
        results[task] = {"methods": res["methods"], "examples": res["examples"], "timings": res["timings"],
                         "seconds": round(time.perf_counter() - t0, 1)}
        lime_ms = res["methods"].get("lime", {}).get("ms_per_explanation", {}).get("median")
        for name, m in res["methods"].items():
            f = lambda d: "n/a" if d.get("mean") is None else f"{d['mean']:.3f}"  # noqa: E731
            ms = m["ms_per_explanation"]["median"]
            ratio = f"1/{lime_ms / ms:.0f}" if lime_ms and ms and name != "lime" and ms < lime_ms else (
                "1" if name == "lime" else "")
            table.append([task, name, f(m["comprehensiveness"]), f(m["sufficiency"]), f(m["stability_seed"]),
                          f(m["stability_typo"]), f"{ms:.1f}", f"{m['forward_passes']['mean']:.0f}", ratio])
    from trustfit.hardware import cpu_kind

    kind = cpu_kind()
    out = {"n": n, "results": results, "cpu_kind": kind, "threads": torch.get_num_threads(),
           "peak_rss_mb": round(peak_rss_mb())}
    print(f"CPU kind: {kind}, {torch.get_num_threads()} threads, precision fp32")
    write_results("explain" + ("_quick" if args.quick else ""), out, table)


if __name__ == "__main__":
    main()
