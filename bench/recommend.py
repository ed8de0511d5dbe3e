"""Recommendation benchmark (issue #13): MovieLens-100K as shared (ratings before 1998-03-07),
its last 10 % by time as the dev period; every method is evaluated on that dev period by time
(each rating ranked with only the history known at that moment), in one run:

- popularity, recency, genre match, item-item collaborative filtering (cosine over liked items),
  zero-shot embedding similarity (pretrained all-MiniLM-L6-v2, mean-pooled, no fine-tuning);
- the fine-tuned pair model (profile text, item text) re-scoring the stage-1 candidates;
- the combined ranker (all signals, weights fitted on a sample of dev-period events).

Reported: AUC (liked vs not-liked items each user rated), nDCG@10, HitRate@10, MRR over the
catalogue, coverage and intra-list diversity of the top-10 lists, for all users and for cold-start
users (no rating before the period), the ranking time per user of both stages, and the training time.

Goals: the pair model beats zero-shot similarity and popularity on AUC and nDCG@10; the combined
ranker beats every single signal; cold-start users get better lists from text than from popularity.

    python bench/recommend.py [--max-pairs 10000] [--epochs 2] [--max-events 400] [--reuse (refit only)]"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, write_results  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TRUSTFIT = [sys.executable, "-m", "trustfit"]
OUT = RESULTS / "recommend"
ML = DATA / "movielens100k"
SINGLE = ("popularity", "recency", "genre", "item-cf", "embedding")
LABEL = {"popularity": "popularity", "recency": "recency (last 30 days)", "genre": "genre match",
         "item-cf": "item-item collaborative filtering", "embedding": "zero-shot embedding similarity",
         "pair": "fine-tuned pair model (two-stage)", "combined": "combined ranker (two-stage)"}


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(TRUSTFIT + cmd, check=True, env=ENV)
    return round(time.perf_counter() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-pairs", type=int, default=10000, help="most recent training pairs (0 = all)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-events", type=int, default=400, help="liked dev-period events ranked over the catalogue")
    ap.add_argument("--reuse", action="store_true", help="reuse the pair model trained in bench/results/recommend: "
                    "only the combiner is fitted again (trustfit recommend refit)")
    a = ap.parse_args()
    model = OUT / "model"
    wall: dict[str, float | None] = {"train": None, "refit": None}
    if a.reuse and (model / "recommender.json").exists():
        wall["refit"] = timed(["recommend", "refit", "--model", str(model)])
    else:
        wall["train"] = timed(["recommend", "train", "--ratings", str(ML / "u.data"), "--items", str(ML / "u.item"),
                               "--summaries", str(ML / "movie_wiki.csv"), "--users", str(ML / "u.user"),
                               "--out", str(model), "--epochs", str(a.epochs), "--overwrite", "--quiet",
                               *(["--max-pairs", str(a.max_pairs)] if a.max_pairs else [])])
    wall["evaluate"] = timed(["recommend", "evaluate", "--model", str(model), "--ratings",
                              str(model / "dev_period.jsonl"), "--max-events", str(a.max_events), "--quiet",
                              "--out", str(OUT / "evaluation")])
    res = json.loads((OUT / "evaluation" / "result.json").read_text())
    meta = json.loads((model / "recommender.json").read_text())
    m = res["methods"]

    def val(method: str, sl: str, metric: str) -> float | None:
        return m[method].get(sl, {}).get(metric)

    def f(v) -> str:
        return "-" if v is None else f"{v:.4f}"

    head = ["method", "AUC", "nDCG@10", "HitRate@10", "MRR", "coverage@10", "diversity@10", "cold-start nDCG@10",
            "cold-start HitRate@10"]
    table = [head] + [[LABEL[k]] + [f(val(k, "all", x)) for x in ("auc", "ndcg@10", "hitrate@10", "mrr",
                                                                    "coverage@10", "diversity@10")]
                      + [f(val(k, "cold-start", x)) for x in ("ndcg@10", "hitrate@10")] for k in m]
    best_single = {x: max(SINGLE + ("pair",), key=lambda k: val(k, "all", x) or 0) for x in ("auc", "ndcg@10")}
    goals = {
        "pair beats zero-shot and popularity on AUC": val("pair", "all", "auc") > max(
            val("embedding", "all", "auc"), val("popularity", "all", "auc")),
        "pair beats zero-shot and popularity on nDCG@10": val("pair", "all", "ndcg@10") > max(
            val("embedding", "all", "ndcg@10"), val("popularity", "all", "ndcg@10")),
        "combined beats every single signal on AUC": val("combined", "all", "auc") > val(best_single["auc"], "all",
                                                                                          "auc"),
        "combined beats every single signal on nDCG@10": val("combined", "all", "ndcg@10") > val(
            best_single["ndcg@10"], "all", "ndcg@10"),
        "cold start: text lists beat popularity (nDCG@10)": max(val("pair", "cold-start", "ndcg@10") or 0,
                                                                 val("combined", "cold-start", "ndcg@10") or 0) >
        (val("popularity", "cold-start", "ndcg@10") or 0),
    }
    result = {"cpu": platform.processor() or platform.machine(), "settings": vars(a), "wall_s": wall,
              "events": res["events"], "timing": res["timing"], "pairs": meta["pairs"],
              "pair_model": meta["pair_model"], "combiner": meta["combiner"], "methods": m, "goals": goals,
              "best_single": best_single}
    write_results("recommend", result, table)
    ev, tm = res["events"], res["timing"]
    print(f"dev period: {ev['labelled']} rated events, {ev['ranked']} liked ones ranked over the catalogue, "
          f"{ev['cold_start_users']} cold-start users; training pairs {meta['pairs']['train']} of "
          f"{meta['pairs']['train_available']}; train {wall['train']} s, refit {wall['refit']} s, evaluate "
          f"{wall['evaluate']} s")
    print(f"ranking time per user: stage 1 {tm['stage1_ms_per_user']:.1f} ms, stage 2 {tm['stage2_ms_per_user']:.1f} "
          f"ms (at most {tm['candidates_at_most']} candidates)")
    for k, ok in goals.items():
        print(f"{'met' if ok else 'NOT met'}: {k}")


if __name__ == "__main__":
    main()
