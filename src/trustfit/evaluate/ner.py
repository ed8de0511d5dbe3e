"""NER metrics.

Entity level: precision/recall/F1, micro and per type, computed by seqeval in strict IOB2
mode on sequences repaired the conlleval way (a stray I-X starts an entity). On valid IOB2
this is plain strict matching; on invalid sequences it equals conlleval.pl, so the number
never depends on which scorer a reader trusts. Token level: the seed's per-tag report (every
tag including O, micro/macro/weighted averages, support) from scikit-learn."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from trustfit.data.tags import repair_iob2, spans_from_tags


@dataclass
class NerMetrics:
    """Entity- and token-level results; `entity['micro']['f1']` is the headline number."""

    entity: dict[str, dict[str, float]]
    token: dict[str, dict[str, float]]
    token_accuracy: float
    n_sentences: int
    n_words: int
    mode: str = "strict IOB2 (conlleval-equivalent)"
    extra: dict = field(default_factory=dict)

    @property
    def f1(self) -> float:
        return self.entity["micro"]["f1"]

    def to_json(self) -> dict:
        return asdict(self)


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per-type and micro/macro entity P/R/F1 (percent-free fractions) with support."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    g = [repair_iob2(s) for s in gold]
    p = [repair_iob2(s) for s in pred]
    with warnings.catch_warnings():  # seqeval averages empty arrays when there are no entities
        warnings.simplefilter("ignore", RuntimeWarning)
        rep = classification_report(g, p, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    out: dict[str, dict[str, float]] = {}
    for k, v in rep.items():
        key = {"micro avg": "micro", "macro avg": "macro", "weighted avg": "weighted"}.get(k, k)
        out[key] = {"precision": float(v["precision"]), "recall": float(v["recall"]),
                    "f1": float(v["f1-score"]), "support": int(v["support"])}
    if "micro" not in out:  # no entities in gold nor prediction
        out["micro"] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    return out


def sentence_entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                           types: Sequence[str] | None = None) -> np.ndarray:
    """[n, T, 3] true positives, false positives and false negatives of exact entity spans per
    sentence and type (the audits resample these). `types=None`: all types in one column (T = 1);
    otherwise spans of other types are not counted."""
    col = None if types is None else {t: i for i, t in enumerate(types)}
    out = np.zeros((len(gold), 1 if col is None else len(col), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, pred)):
        gs, ps = set(spans_from_tags(g)), set(spans_from_tags(p))
        for k, spans in enumerate((gs & ps, ps - gs, gs - ps)):
            for sp in spans:
                j = 0 if col is None else col.get(sp.label)
                if j is not None:
                    out[i, j, k] += 1
    return out


def token_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                 labels: Sequence[str] | None = None) -> tuple[dict[str, dict[str, float]], float]:
    """Per-tag precision/recall/F1/support over all words (O included), with averages."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    g = [t for s in gold for t in s]
    p = [t for s in pred for t in s]
    labels = list(labels) if labels else sorted(set(g) | set(p))
    P, R, F, S = precision_recall_fscore_support(g, p, labels=labels, zero_division=0)
    out = {lab: {"precision": float(P[i]), "recall": float(R[i]), "f1": float(F[i]), "support": int(S[i])}
           for i, lab in enumerate(labels)}
    for avg in ("micro", "macro", "weighted"):
        a = precision_recall_fscore_support(g, p, labels=labels, average=avg, zero_division=0)
        out[avg] = {"precision": float(a[0]), "recall": float(a[1]), "f1": float(a[2]), "support": len(g)}
    return out, float(accuracy_score(g, p)) if g else 0.0


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                labels: Sequence[str] | None = None) -> NerMetrics:
    """Both reports for parallel gold/pred tag sequences (one list per sentence)."""
    if len(gold) != len(pred) or any(len(a) != len(b) for a, b in zip(gold, pred)):
        raise ValueError("gold and predicted sequences differ in shape")
    ent = entity_scores(gold, pred)
    tok, acc = token_scores(gold, pred, labels)
    return NerMetrics(entity=ent, token=tok, token_accuracy=acc, n_sentences=len(gold),
                      n_words=sum(len(s) for s in gold))


def _table(title: str, rows: dict[str, dict[str, float]], order: list[str]):
    from rich.table import Table

    t = Table(title=title)
    for c in ("", "precision", "recall", "f1", "support"):
        t.add_column(c, justify="right" if c else "left")
    for k in order:
        if k in rows:
            r = rows[k]
            t.add_row(k, f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"{100 * r['f1']:.2f}",
                      str(r["support"]))
    return t


def render_metrics(m: NerMetrics, console=None) -> None:
    """Print both reports as tables (percentages)."""
    from rich.console import Console

    console = console or Console()
    avgs = ["micro", "macro", "weighted"]
    types = sorted(k for k in m.entity if k not in avgs)
    console.print(_table(f"Entity level, {m.mode}", m.entity, types + avgs))
    tags = [k for k in m.token if k not in avgs]
    console.print(_table(f"Token level (accuracy {100 * m.token_accuracy:.2f} %)", m.token, tags + avgs))


def write_conll_predictions(path, sentences, predictions: Sequence[Sequence[str]]) -> None:
    """One `token gold pred` line per input word, blank line between sentences."""
    with open(path, "w", encoding="utf-8") as f:
        for s, pred in zip(sentences, predictions):
            gold = s.tags or ["O"] * len(s.tokens)
            for tok, g, p in zip(s.tokens, gold, pred):
                f.write(f"{tok} {g} {p}\n")
            f.write("\n")
