"""The data a fairness audit scores, per task: a labelled file, the model's predictions on it,
group metrics from per-example counts, and counterfactual versions of its sentences scored
group by group (`counterfactual`). `ClassifyData` also serves the group-threshold fit."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np

from trustfit.auditing import read_labelled_conll
from trustfit.errors import TrustfitError
from trustfit.fairness.metrics import (ClassifyCounts, NerCounts, classify_metric_fns, finite_or_none, group_gaps,
                                       interval, metric_frame, ner_metric_fns, pair_gaps, resample_weights)
from trustfit.fairness.swaps import PERSON_LABELS, counterfactual, example_slots
from trustfit.fairness.templates import ner_suite, sentiment_suite


class FairnessError(TrustfitError):
    """The fairness audit cannot run as asked."""


def default_positive_label(labels: Sequence[str]) -> str:
    """'positive' when the model has it, else the last label (one-vs-rest)."""
    for lab in labels:
        if lab.lower() in ("positive", "pos", "1", "true", "yes"):
            return lab
    return labels[-1]


def group_column_values(examples: Sequence[Any], col: str, source: str) -> list[str]:
    """Each row's value in a group column of a classification file (`TextExample.meta`); a
    column no row has is refused naming the columns there are, rows without a value with
    where they are."""
    present = [e.meta.get(col) for e in examples]
    if all(v is None for v in present):
        cols = sorted({k for e in examples for k in e.meta})
        raise FairnessError(f"{source}: no group column {col!r}; the file's other columns are "
                            f"{', '.join(map(repr, cols)) or 'none'} (text and label columns excluded)")
    missing = [f"{e.source}:{e.line}" for e, v in zip(examples, present) if v is None or str(v).strip() == ""]
    if missing:
        raise FairnessError(f"{source}: {len(missing)} rows have no value in group column {col!r} (first: "
                            f"{', '.join(missing[:5])}); fill them (e.g. 'unknown') or drop those rows")
    return [str(v) for v in present]


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) for k in keys])


class AuditData:
    """A labelled file and the model's predictions on it, with what both tasks share: group
    metrics and overall scores from a count table. Subclasses read the task's format."""

    counts: Any
    n: int

    def group_metrics(self, groups: np.ndarray, resamples: int, seed: int, min_group_size: int) -> dict[str, Any]:
        gaps = group_gaps(self.counts, groups, resamples, seed, min_group_size)
        big = [g for g, e in gaps.items() if e["n"] >= min_group_size]
        fl = None
        note = None
        if len(big) >= 2:
            keep = np.isin(groups.astype(str), big)
            fl = self.metric_frame(keep, groups[keep].astype(str), resamples, seed)
        else:
            note = (f"fewer than two groups have {min_group_size} or more examples: no between-group differences "
                    "or ratios")
        flagged = [{"group": g, "metric": m, "gap": v["gap_to_rest"], "gap_ci": v["gap_ci"]}
                   for g, e in gaps.items() for m, v in e["metrics"].items() if v.get("flagged")]
        return {"groups": gaps, "fairlearn": fl, "flagged": flagged, "note": note, "main_metric": self.main_metric}

    def overall(self) -> dict[str, Any]:
        v = self.counts.values(self.counts.table.sum(0), np.float64(self.n))
        return {m: float(v[m]) for m in self.counts.names}


class ClassifyData(AuditData):
    """Classification: gold labels, probabilities, predictions and the positive label."""

    slot_word = "term or listed first name"
    main_metric = "accuracy"
    template_suite = staticmethod(sentiment_suite)

    def __init__(self, model_dir: str, data: str, meta: dict, batch_size: int, text_column: str | None, format: str,
                 limit: int | None, positive_label: str | None) -> None:
        from trustfit.data.text import TextCorpus, read_text_corpus
        from trustfit.predict.classify import ClassifierPredictor
        from trustfit.tasks.classify import check_labels

        self.data = data
        self.predictor = ClassifierPredictor.from_dir(model_dir, batch_size=batch_size)
        self.precision = self.predictor.precision
        labels = self.predictor.labels
        corpus = read_text_corpus(data, format=format, text_column=text_column or meta.get("text_column", "text"),
                                  label_column=meta.get("label_column", "label"), pair_column=meta.get("pair_column"))
        check_labels(corpus, labels)
        if limit:
            corpus = TextCorpus(corpus.examples[:limit], corpus.source)
        self.examples, self.n = corpus.examples, len(corpus)
        if positive_label is not None and positive_label not in labels:
            raise FairnessError(f"--positive-label {positive_label!r} is not a label of the model ({', '.join(labels)})")
        self.positive = positive_label or default_positive_label(labels)
        self.pos = labels.index(self.positive)
        self.gold = np.array([labels.index(e.label) for e in self.examples])
        self.probs = self.predict(self.examples)
        self.pred = self.probs.argmax(1)
        self.counts = ClassifyCounts(self.gold, self.pred, len(labels), self.pos)

    def predict(self, examples) -> np.ndarray:
        from trustfit.data.text import TextCorpus

        return self.predictor.predict(TextCorpus(list(examples))).probs

    def column(self, col: str) -> np.ndarray:
        return np.array(group_column_values(self.examples, col, self.data), dtype=object)

    def metric_frame(self, keep: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
        return metric_frame(classify_metric_fns(len(self.predictor.labels), self.pos), self.gold[keep], self.pred[keep],
                            groups, self.counts.subset(keep), resamples, seed)

    def overall(self) -> dict[str, Any]:
        return super().overall() | {"positive_label": self.positive}

    @staticmethod
    def scored_pairs(groups: Sequence[str], score: np.ndarray, pred: np.ndarray, resamples: int,
                     seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Bootstrap samples [R, G] of the mean P(positive) per version, and the pair gaps and
        flip rates they give."""
        W = resample_weights(len(score), resamples, seed) / len(score)
        boot = W @ score
        return boot, pair_gaps(groups, score.mean(0), boot, pred, W)

    def counterfactual(self, spec: str, sw, examples, resamples: int, seed: int) -> dict[str, Any] | None:
        base = [e for e in examples if example_slots(e, sw)]
        if not base:
            return None
        versions = [[counterfactual(e, sw, g, _rng(seed, spec, str(i))) for g in sw.groups] for i, e in enumerate(base)]
        flat = [v for row in versions for v in row]
        probs = self.predict(flat).reshape(len(base), len(sw.groups), -1)
        score, pred = probs[:, :, self.pos], probs.argmax(-1)
        boot, pairs = self.scored_pairs(sw.groups, score, pred, resamples, seed)
        groups = {g: {"mean_score": float(score[:, k].mean()), "ci": interval(boot[:, k]),
                      "positive_share": float((pred[:, k] == self.pos).mean())} for k, g in enumerate(sw.groups)}
        examples_json = [{"versions": {g: v.text for g, v in zip(sw.groups, row)},
                          "scores": {g: round(float(s), 4) for g, s in zip(sw.groups, srow)}}
                         for row, srow in list(zip(versions, score))[:5]]
        out = {"examples": len(base), "metric": f"P({self.positive})", "groups": groups, "pairs": pairs,
               "samples": examples_json}
        polarity = np.array([e.meta.get("polarity", "") for e in base])
        if all(polarity):  # a template suite: the same pairs within each polarity of its words
            out["by_polarity"] = {p: {"examples": int((polarity == p).sum()),
                                      "mean_score": {g: float(score[polarity == p, k].mean()) for k, g in enumerate(sw.groups)},
                                      "pairs": self.scored_pairs(sw.groups, score[polarity == p],
                                                                 pred[polarity == p], resamples, seed)[1]}
                                  for p in dict.fromkeys(polarity.tolist())}
        return out


class NerData(AuditData):
    """NER: gold and predicted IOB2 tags of each sentence, predicted one sentence at a time."""

    slot_word = "term, or a PER entity for names"
    main_metric = "f1"
    template_suite = staticmethod(ner_suite)

    def __init__(self, model_dir: str, data: str, meta: dict, batch_size: int, limit: int | None, **_: Any) -> None:
        from trustfit.predict.ner import NerPredictor

        self.data = data
        self.predictor = NerPredictor.from_dir(model_dir, batch_size=batch_size)
        self.precision = self.predictor.precision
        corpus = read_labelled_conll(data, self.predictor.schema, meta, "fairness")
        self.examples = corpus.sentences[:limit] if limit else corpus.sentences
        self.n = len(self.examples)
        self.types = sorted({lab[2:] for lab in self.predictor.schema.labels if lab != "O"})
        self.pred = self.predict(self.examples)
        self.counts = NerCounts([s.tags for s in self.examples], self.pred, self.types)

    def predict(self, sentences) -> list[list[str]]:
        from trustfit.data.schema import Corpus

        return self.predictor.predict(Corpus(list(sentences), source=self.data)).tags

    def column(self, col: str) -> np.ndarray:
        raise FairnessError(f"{self.data}: a CoNLL file has no group columns ({col!r}); group NER sentences by the "
                            "terms they mention instead: --group-terms gender (or names, religion, nationality, a "
                            "term list file)")

    def metric_frame(self, keep: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
        idx = np.flatnonzero(keep)
        return metric_frame(ner_metric_fns(self.counts), idx, idx, groups, self.counts.subset(keep), resamples, seed)

    def counterfactual(self, spec: str, sw, examples, resamples: int, seed: int) -> dict[str, Any] | None:
        base = [s for s in examples if example_slots(s, sw)]
        if not base:
            return None
        versions = [[counterfactual(s, sw, g, _rng(seed, spec, str(i))) for g in sw.groups] for i, s in enumerate(base)]
        names = ["original"] + list(sw.groups)
        all_sents = base + [v for row in versions for v in row]
        tags = self.predict(all_sents)
        table = NerCounts([s.tags for s in all_sents], tags, self.types).table
        n, G = len(base), len(sw.groups)
        per = np.concatenate([table[:n, None, :], table[n:].reshape(n, G, -1)], axis=1)  # [n, 1 + G, 3T]
        metric = "PER_recall" if sw.kind == "names" and "PER" in self.types else "f1"
        W = resample_weights(n, resamples, seed)
        boot = self.counts.values(np.einsum("rn,ngk->rgk", W, per), np.float64(n))
        point = self.counts.values(per.sum(0), np.float64(n))
        groups = {g: {"value": float(point[metric][k]), "ci": interval(boot[metric][:, k]),
                      "per_type_recall": {t: finite_or_none(point[f"{t}_recall"][k]) for t in self.types}}
                  for k, g in enumerate(names)}
        pairs = pair_gaps(sw.groups, point[metric][1:], boot[metric][:, 1:])  # between groups, not the original
        samples = [{"versions": {g: " ".join(v.tokens) for g, v in zip(sw.groups, row)}} for row in versions[:5]]
        out = {"examples": n, "metric": metric, "groups": groups, "pairs": pairs, "samples": samples}
        if sw.kind == "names":
            out["names_least_found"] = least_found_names(all_sents[n:], tags[n:], sw.groups * n)
        return out


def least_found_names(sentences, tags, groups: Sequence[str], k: int = 3, min_mentions: int = 10
                      ) -> dict[str, list[dict[str, Any]]]:
    """Per group, the k swapped-in words (first names and surnames, any case) with `min_mentions`
    or more whose person mentions the model found least often as exact PER spans: which names
    make a group's gap."""
    from trustfit.data.tags import spans_from_tags

    found: dict[str, dict[str, list[int]]] = {}
    for s, pred, g in zip(sentences, tags, groups):
        hits = set(spans_from_tags(pred))
        for sp in spans_from_tags(s.tags):
            if sp.label.lower() in PERSON_LABELS:
                for w in s.tokens[sp.start:sp.end]:
                    c = found.setdefault(g, {}).setdefault(w.title(), [0, 0])
                    c[0] += sp in hits
                    c[1] += 1
    return {g: [{"name": w, "recall": c[0] / c[1], "mentions": c[1]}
                for w, c in sorted((kv for kv in by_word.items() if kv[1][1] >= min_mentions),
                                   key=lambda kv: kv[1][0] / kv[1][1])[:k]]
            for g, by_word in found.items()}


