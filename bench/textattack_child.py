"""TextAttack side of bench/robustness.py, run in its own venv (textattack pins packages that
trustfit's environment has newer): attacks a trustfit FPB classifier (a plain HF folder) on the
same dev examples as trustfit's word-sub, with

* DeepWordBug (Gao et al. 2018), a stock TextAttack recipe that needs no downloads, and
* TextAttack's own greedy word-importance search (GreedyWordSwapWIR, "delete") driving the same
  candidates as word-sub (trustfit's embedding neighbours, cosine >= 0.5, 8 per word), with
  RepeatModification, StopwordModification (trustfit's list) and MaxWordsPerturbed(25 %):
  an independent implementation of word-sub's search to compare success rates with.

    python bench/textattack_child.py MODEL_DIR DEV_JSONL LIMIT BUDGET   (prints one JSON line)"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    model_dir, data, limit, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import textattack
    import transformers
    from textattack.attack_recipes import DeepWordBugGao2018
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwap

    from trustfit.robust.perturb.word_sub import STOP_WORDS, EmbeddingNeighbours, match_case

    meta = json.loads(open(f"{model_dir}/trustfit.json").read())
    labels = meta["labels"]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    wrapper = textattack.models.wrappers.HuggingFaceModelWrapper(model, tokenizer)
    rows = [json.loads(line) for line in open(data, encoding="utf-8") if line.strip()][:limit]
    neighbours = EmbeddingNeighbours.from_model(model, tokenizer)

    class EmbeddingNeighbourSwap(WordSwap):
        """trustfit word-sub's candidates as a TextAttack transformation."""

        def _get_replacement_words(self, word):
            return [match_case(w, word) for w, _ in neighbours(word, 8, 0.5)]

    goal = UntargetedClassification(wrapper, query_budget=budget)
    same_search = textattack.Attack(goal, [RepeatModification(), StopwordModification(stopwords=set(STOP_WORDS)),
                                           MaxWordsPerturbed(max_percent=0.25)],
                                    EmbeddingNeighbourSwap(), GreedyWordSwapWIR(wir_method="delete"))
    deepwordbug = DeepWordBugGao2018.build(wrapper)
    deepwordbug.goal_function.query_budget = budget
    from importlib.metadata import version

    out = {"textattack_version": version("textattack"), "examples": len(rows),
           "query_budget": budget, "recipes": {}}
    for name, attack in (("word-importance search + trustfit candidates", same_search), ("DeepWordBug", deepwordbug)):
        t0 = time.perf_counter()
        succ = fail = skip = 0
        queries = []
        for r in rows:
            res = attack.attack(r["text"], labels.index(r["label"]))
            if isinstance(res, SkippedAttackResult):
                skip += 1
                continue
            queries.append(res.num_queries)
            if isinstance(res, SuccessfulAttackResult):
                succ += 1
            elif isinstance(res, FailedAttackResult):
                fail += 1
        attacked = succ + fail
        out["recipes"][name] = {"attacked": attacked, "skipped_already_wrong": skip, "successes": succ,
                                "success_rate": succ / attacked if attacked else None,
                                "clean_accuracy": attacked / len(rows), "attacked_accuracy": fail / len(rows),
                                "queries_per_example": sum(queries) / max(1, len(queries)),
                                "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
