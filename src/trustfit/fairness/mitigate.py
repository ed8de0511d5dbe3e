"""Mitigations that work on a fine-tuned transformer.

- `CounterfactualAugmentation`: a training plugin that, every epoch, rewrites a share of the
  training examples that mention a swappable term (or, for NER, a person) with the terms of
  another group (labels kept, NER tags rebuilt), freshly drawn per (seed, epoch), so resumed
  and 2-process runs see the same data. The rewritten examples replace the originals for that
  epoch (the epoch has as many examples as the data).
- Group-aware thresholds: Fairlearn's `ThresholdOptimizer` fitted on the model's probability
  of one positive label where a group attribute is known, stored as JSON beside the model
  (`fairness_thresholds.json`, never a pickle) and applied by `trustfit predict --group`."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trustfit.errors import TrustfitError
from trustfit.fairness.swaps import example_slots, make_swapper, random_counterfactual
from trustfit.train.plugins import EpochData

THRESHOLDS_FILE = "fairness_thresholds.json"
CONSTRAINTS = ("demographic_parity", "equalized_odds", "true_positive_rate_parity", "false_positive_rate_parity",
               "false_negative_rate_parity", "true_negative_rate_parity")


class CounterfactualAugmentation(EpochData):
    """Replaces `rate` x the eligible examples by counterfactual versions each epoch."""

    def __init__(self, examples: Sequence[Any], lists: Sequence[str], rate: float, seed: int,
                 encode: Callable[[list[Any]], list[Any]]) -> None:
        self.examples, self.rate, self.seed, self.encode = list(examples), float(rate), int(seed), encode
        self.swappers = [make_swapper(s) for s in lists]
        self.lists = [sw.name for sw in self.swappers]  # a file list is named by its stem
        # per example: the lists that find something to swap in it
        self.applicable = [[k for k, sw in enumerate(self.swappers) if example_slots(e, sw)] for e in self.examples]
        self.eligible = [i for i, a in enumerate(self.applicable) if a]
        self.stats: dict[int, dict[str, Any]] = {}

    def epoch_examples(self, epoch: int) -> list[Any]:
        """The training examples of `epoch`, a share of the eligible ones swapped."""
        rng = np.random.default_rng([self.seed, epoch, 0xCDA])
        k = int(round(self.rate * len(self.eligible)))
        chosen = sorted(int(j) for j in rng.choice(self.eligible, size=k, replace=False)) if k else []
        out = list(self.examples)
        per_list = dict.fromkeys(self.lists, 0)
        for i in chosen:
            e = out[i]
            for k_list in self.applicable[i]:
                new = random_counterfactual(e, self.swappers[k_list], rng)
                if new is not None:
                    e = new
                    per_list[self.lists[k_list]] += 1
            out[i] = e
        self.stats[epoch] = {"swapped_examples": len(chosen), "swaps_per_list": per_list}
        return out

    def build(self, epoch: int) -> list[Any]:
        return self.encode(self.epoch_examples(epoch))

    def summary(self) -> dict[str, Any]:
        return {"lists": self.lists, "rate": self.rate, "mode": "swapped in place (labels kept)",
                "examples": len(self.examples), "eligible_examples": len(self.eligible),
                "lists_detail": {s: sw.describe() for s, sw in zip(self.lists, self.swappers)},
                "epochs": {str(e): s for e, s in sorted(self.stats.items())}}


def make_cda(cfg, task, tokenizer, max_length: int) -> CounterfactualAugmentation:
    """The counterfactual-augmentation plugin of a training run (`cfg.cda`, `cfg.cda_rate`)."""
    if cfg.task == "ner":
        from trustfit.data.schema import Corpus
        from trustfit.encode.tokenize import encode_corpus

        train = task.train

        def encode(sentences: list[Any]) -> list[Any]:
            return encode_corpus(Corpus(sentences, train.source, train.has_documents), tokenizer, task.schema,
                                 max_length, cfg.context_tokens, cfg.stride, pack=cfg.pack, pack_tokens=cfg.pack_tokens)

        examples = train.sentences
    else:
        from trustfit.data.text import TextCorpus
        from trustfit.encode.text import encode_texts

        def encode(texts: list[Any]) -> list[Any]:
            return encode_texts(TextCorpus(texts), tokenizer, task.label2id, max_length)[0]

        examples = task.train.examples
    cda = CounterfactualAugmentation(examples, cfg.cda, cfg.cda_rate, cfg.seed, encode)
    if not cda.eligible:
        raise TrustfitError(f"--cda {','.join(cfg.cda)}: no training example of {cfg.train} mentions a term of "
                            "these lists (or, for names in NER, a PER entity): nothing to swap; drop --cda or use "
                            "other lists")
    return cda


# ---------------------------------------------------------------- group-aware thresholds

def _score_estimator():
    """A prefit scikit-learn classifier whose input is already the model's score: the
    ThresholdOptimizer then post-processes the transformer's probabilities, refitting nothing."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class ScoreColumn(ClassifierMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.classes_ = np.array([0, 1])
            return self

        def predict_proba(self, X):
            s = np.asarray(X, dtype=float).reshape(-1)
            return np.column_stack([1 - s, s])

        def predict(self, X):
            return (np.asarray(X, dtype=float).reshape(-1) > 0.5).astype(int)

    return ScoreColumn().fit(None)


def fit_thresholds(scores: np.ndarray, y: np.ndarray, groups: np.ndarray, constraint: str,
                   objective: str = "accuracy_score", grid_size: int = 1000):
    """Fairlearn's ThresholdOptimizer on scores [n] in [0, 1], binary targets [n], groups [n]."""
    from fairlearn.postprocessing import ThresholdOptimizer

    if constraint not in CONSTRAINTS:
        raise TrustfitError(f"unknown constraint {constraint!r}: use one of {', '.join(CONSTRAINTS)}")
    opt = ThresholdOptimizer(estimator=_score_estimator(), constraints=constraint, objective=objective, prefit=True,
                             predict_method="predict_proba", grid_size=grid_size)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.fit(scores.reshape(-1, 1), y.astype(int), sensitive_features=groups.astype(str))
    return opt


def rules_from_optimizer(opt) -> dict[str, Any]:
    """The fitted per-group randomised thresholds as plain JSON."""
    rules = {}
    for g, it in opt.interpolated_thresholder_.interpolation_dict.items():
        rule = {"p0": float(it.p0), "operation0": [it.operation0.operator, float(it.operation0.threshold)],
                "p1": float(it.p1), "operation1": [it.operation1.operator, float(it.operation1.threshold)]}
        if "p_ignore" in it:
            rule["p_ignore"], rule["prediction_constant"] = float(it.p_ignore), float(it.prediction_constant)
        rules[str(g)] = rule
    return rules


def _op(op: Sequence, s: np.ndarray) -> np.ndarray:
    return (s > op[1]) if op[0] == ">" else (s < op[1])


def positive_probability(rules: dict[str, Any], scores: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """P(predict positive) per example under the stored rules (Fairlearn's _pmf_predict, on JSON)."""
    out = np.full(len(scores), np.nan)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    for g, r in rules.items():
        m = groups == g
        p = r["p0"] * _op(r["operation0"], scores[m]) + r["p1"] * _op(r["operation1"], scores[m])
        if "p_ignore" in r:
            p = r["p_ignore"] * r["prediction_constant"] + (1 - r["p_ignore"]) * p
        out[m] = p
    return out


def decide(rules: dict[str, Any], probs: np.ndarray, groups: Sequence[str], positive: int,
           texts: Sequence[str]) -> np.ndarray:
    """Labels under the group thresholds: positive when a draw falls under P(positive), else
    the most probable other label. Each draw is seeded by the text, so an input always gets the
    same answer."""
    unknown = sorted({str(g) for g in groups} - set(rules))
    if unknown:
        raise TrustfitError(f"group {', '.join(map(repr, unknown))} has no fitted threshold; the thresholds know "
                            f"{', '.join(map(repr, sorted(rules)))}")
    p_pos = positive_probability(rules, probs[:, positive], groups)
    draws = np.array([int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") / 2 ** 64 for t in texts])
    others = probs.copy()
    others[:, positive] = -1
    return np.where(draws < p_pos, positive, others.argmax(1))


def load_thresholds(model_dir: str | Path) -> dict[str, Any] | None:
    p = Path(model_dir) / THRESHOLDS_FILE
    return json.loads(p.read_text()) if p.exists() else None


def _group_rates(gold: np.ndarray, pred: np.ndarray, groups: np.ndarray, positive: int) -> dict[str, Any]:
    out = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        pos_t = gold[m] == positive
        out[str(g)] = {"n": int(m.sum()), "accuracy": float((gold[m] == pred[m]).mean()),
                       "selection_rate": float((pred[m] == positive).mean()),
                       "true_positive_rate": float((pred[m][pos_t] == positive).mean()) if pos_t.any() else None,
                       "false_positive_rate": float((pred[m][~pos_t] == positive).mean()) if (~pos_t).any() else None}
    rates = {k: [v[k] for v in out.values() if v[k] is not None] for k in ("selection_rate", "true_positive_rate",
                                                                            "false_positive_rate")}
    return {"accuracy": float((gold == pred).mean()), "groups": out,
            "max_gap": {k: (max(v) - min(v)) if len(v) > 1 else None for k, v in rates.items()}}


def fit_group_thresholds(model_dir: str, data: str, group_column: str, constraint: str = "demographic_parity",
                         positive_label: str | None = None, eval_data: str | None = None, text_column: str | None = None,
                         format: str = "auto", batch_size: int = 64) -> dict[str, Any]:
    """Fit per-group thresholds on `data`, store them with the model, and report accuracy and
    group rates before vs after on `eval_data` (default: `data` itself, said so)."""
    from trustfit.fairness.data import ClassifyData
    from trustfit.models.backbone import model_task, read_meta, resolve_model_source

    if model_task(model_dir) != "classify":
        raise TrustfitError("group thresholds apply to classification models (a score per text); this model does NER")
    meta = read_meta(resolve_model_source(model_dir))
    fit = ClassifyData(model_dir, data, meta, batch_size, text_column, format, None, positive_label)
    groups = fit.column(group_column)
    small = {g: n for g, n in Counter(groups.tolist()).items() if n < 10}
    if small:
        raise TrustfitError(f"{data}: groups with fewer than 10 rows cannot get a threshold: "
                            f"{', '.join(f'{g} ({n})' for g, n in sorted(small.items()))}; merge or drop them")
    y = fit.gold == fit.pos
    opt = fit_thresholds(fit.probs[:, fit.pos], y, groups, constraint)
    rules = rules_from_optimizer(opt)
    record = {"kind": "group_thresholds", "method": "fairlearn.postprocessing.ThresholdOptimizer",
              "constraint": constraint, "objective": "accuracy_score", "positive_label": fit.positive,
              "group_column": group_column, "fitted_on": {"path": str(data), "rows": fit.n}, "rules": rules,
              "randomised": "between two thresholds a group's decision is a draw; trustfit seeds it by the text"}
    ev = fit if eval_data is None else ClassifyData(model_dir, eval_data, meta, batch_size, text_column, format, None,
                                                    fit.positive)
    ev_groups = groups if eval_data is None else ev.column(group_column)
    after = decide(rules, ev.probs, ev_groups, ev.pos, [e.text for e in ev.examples])
    record["evaluation"] = {"data": str(eval_data or data), "in_sample": eval_data is None,
                            "before": _group_rates(ev.gold, ev.pred, ev_groups, ev.pos),
                            "after": _group_rates(ev.gold, after, ev_groups, ev.pos)}
    (Path(model_dir) / THRESHOLDS_FILE).write_text(json.dumps(record, indent=2))
    return record
