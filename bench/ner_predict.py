"""Inference benchmark: trustfit's predictor on each runtime (PyTorch at the default precision
and in fp32, dynamic int8, ONNX Runtime) against transformers' token-classification pipeline
(aggregation_strategy="simple"), one sentence a call and batch_size 32, on the same model and
the same sentences (CoNLL-2003 valid), in one process, one after another; trustfit's entity F1
on each runtime shows what a faster runtime costs.

    python bench/ner_predict.py [--model DIR] [--quick] [--emulate avx2]

Without --model it uses the model the training benchmark saved, or trains a short one."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, add_emulate_option, emulate_cpu, write_results  # noqa: E402


def runtime_table(model: str, corpus, runtimes=("auto", "fp32", "int8", "onnx", "onnx-int8")) -> dict:
    """Per runtime ('auto'/'fp32'/'bf16': PyTorch at that precision; 'int8', 'onnx', 'onnx-int8':
    those runtimes), words/s over `corpus` (its second pass: a long-running process's speed) and
    entity F1 against its tags."""
    from trustfit.evaluate.ner import ner_metrics
    from trustfit.predict.ner import NerPredictor
    from trustfit.predict.runtime import RUNTIMES, use_runtime

    out = {}
    for name in runtimes:
        p = NerPredictor.from_dir(model, batch_size=64, precision="fp32" if name in RUNTIMES else name)
        use_runtime(p, name if name in RUNTIMES else "torch")
        p.predict(corpus)  # warm-up: oneDNN builds its kernels per input shape on first sight
        t0 = time.perf_counter()
        pred = p.predict(corpus)
        sec = time.perf_counter() - t0
        m = ner_metrics([s.tags for s in corpus], pred.tags, p.schema.labels)
        label = f"torch {p.precision}" if name not in RUNTIMES else name
        out[label] = {"words_per_second": corpus.n_words / sec, "f1": 100 * m.f1}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--quick", action="store_true", help="800 sentences instead of all 3,250")
    ap.add_argument("--sentences", type=int, default=None)
    ap.add_argument("--runtimes", default="auto,fp32,int8,onnx,onnx-int8",
                    help="trustfit's runtimes to measure, comma-separated; the first is the default's row")
    ap.add_argument("--name", default=None, help="results file name (default ner_predict[_quick][_avx2])")
    add_emulate_option(ap)
    args = ap.parse_args()
    emulate_cpu(args.emulate)  # before torch is imported: ATen reads its cap once

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from trustfit.data.conll import read_conll
    from trustfit.data.schema import Corpus

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
    dev = read_conll(DATA / "conll2003/valid.txt")
    # sentences without their documents: the pipeline's input, so no document context on either side
    corpus = Corpus(dev.sentences[:n], source=dev.source, has_documents=False)
    lines = [" ".join(s.tokens) for s in corpus.sentences]
    words = corpus.n_words
    res: dict = {"model": model, "sentences": len(lines), "words": words, "torch_threads": torch.get_num_threads(),
                 "trustfit": runtime_table(model, corpus, tuple(args.runtimes.split(",")))}

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return words / (time.perf_counter() - t0)

    pipe = pipeline("token-classification", model=model, aggregation_strategy="simple", device="cpu")
    pipe(lines, batch_size=32)  # warm-up, as trustfit's
    [pipe(line) for line in lines[:500]]
    res["pipeline_one_at_a_time"] = timed(lambda: [pipe(line) for line in lines])
    res["pipeline_batch_32"] = timed(lambda: pipe(lines, batch_size=32))
    default = next(iter(res["trustfit"]))
    best = max(res["trustfit"], key=lambda k: res["trustfit"][k]["words_per_second"])
    for key in (default, best):
        res[f"ratio_{key.replace(' ', '_')}_vs_pipeline_batch_32"] = (
            res["trustfit"][key]["words_per_second"] / res["pipeline_batch_32"])
    rows = [["", "words/s", "entity F1 (sentences alone)", "vs pipeline batch 32"]]
    rows += [[f"trustfit, {k}" + (" (default)" if k == default else ""), f"{v['words_per_second']:.0f}",
              f"{v['f1']:.2f}", f"{v['words_per_second'] / res['pipeline_batch_32']:.2f}x"]
             for k, v in res["trustfit"].items()]
    rows.append(["pipeline, one sentence a call", f"{res['pipeline_one_at_a_time']:.0f}", "", ""])
    rows.append(["pipeline, batch_size=32", f"{res['pipeline_batch_32']:.0f}", "", "1.00x"])
    name = args.name or "ner_predict" + ("_quick" if args.quick else "") + (f"_{args.emulate}" if args.emulate else "")
    write_results(name, res, rows)


if __name__ == "__main__":
    main()
