"""Inference benchmark: trustfit predict vs transformers' token-classification pipeline
(aggregation_strategy="simple"), one sentence a call and batch_size 32, on the same model and
the same sentences (CoNLL-2003 valid joined as plain text), in one process, one after another.

    python bench/ner_predict.py [--model DIR] [--quick]

Without --model it uses the model the training benchmark saved, or trains a short one."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--quick", action="store_true", help="800 sentences instead of all 3,250")
    ap.add_argument("--sentences", type=int, default=None)
    args = ap.parse_args()

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from trustfit.data.conll import read_conll
    from trustfit.predict.ner import NerPredictor, corpus_from_lines

    hf_logging.set_verbosity_error()
    model = args.model
    if model is None:
        for cand in (RESULTS / "trustfit_model", RESULTS / "trustfit_model_quick"):
            if (cand / "config.json").exists():
                model = str(cand)
                break
    if model is None:
        from trustfit.config import TrainConfig
        from trustfit.train.run import train_ner

        model = str(RESULTS / "predict_bench_model")
        train_ner(TrainConfig(train=str(DATA / "conll2003/train.txt"), out=model, max_steps=30), overwrite=True,
                  quiet=True)
    n = args.sentences or (800 if args.quick else None)
    sents = read_conll(DATA / "conll2003/valid.txt").sentences[:n]
    lines = [" ".join(s.tokens) for s in sents]
    words = sum(len(s.tokens) for s in sents)
    res: dict = {"model": model, "sentences": len(lines), "words": words, "torch_threads": torch.get_num_threads()}

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return words / (time.perf_counter() - t0)

    for prec in ("auto", "fp32"):
        pred = NerPredictor.from_dir(model, precision=prec, batch_size=64)
        pred.predict(corpus_from_lines(lines[:64]))  # warm-up
        res[f"trustfit_{pred.precision}"] = timed(lambda: pred.predict(corpus_from_lines(lines)))
    pipe = pipeline("token-classification", model=model, aggregation_strategy="simple", device="cpu")
    pipe(lines[:8])
    res["pipeline_one_at_a_time"] = timed(lambda: [pipe(line) for line in lines])
    res["pipeline_batch_32"] = timed(lambda: pipe(lines, batch_size=32))
    best = max(v for k, v in res.items() if k.startswith("trustfit_"))
    res["ratio_vs_pipeline_batch_32"] = best / res["pipeline_batch_32"]
    res["ratio_vs_pipeline_one_at_a_time"] = best / res["pipeline_one_at_a_time"]
    rows = [["", "words/s"]] + [[k, f"{v:.0f}"] for k, v in res.items()
                                if k.startswith(("trustfit_", "pipeline_"))]
    rows.append(["ratio trustfit / pipeline batch 32", f"{res['ratio_vs_pipeline_batch_32']:.2f}x"])
    rows.append(["ratio trustfit / pipeline one at a time", f"{res['ratio_vs_pipeline_one_at_a_time']:.2f}x"])
    write_results("ner_predict_quick" if args.quick else "ner_predict", res, rows)


if __name__ == "__main__":
    main()
