"""How good an explanation is, as numbers:

* comprehensiveness (ERASER, DeYoung et al. 2020; ferret): p(x) - p(x without the top-k words),
  averaged over k = 10, 20, 30, 40, 50 % of the words (AOPC): higher is better;
* sufficiency: p(x) - p(only the top-k words), averaged the same way: lower is better;
* stability: Spearman rank correlation of the word scores between two seeds, and between the
  text and the same text with one typo in a word outside the target (over the unchanged words).

p is the explained value on a 0-1 scale: the class probability, or for an NER span the joint
probability of its tags. Removed words are replaced by the mask token (positions kept)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from trustfit.explain.base import Target, Text
from trustfit.explain.model import ExplainableModel
from trustfit.robust.perturb.typo import keyboard_neighbours as _neighbours

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)


def top_k_counts(n_words: int, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    """Words removed at each fraction: ceil(q * n), at least 1, at most n."""
    return [min(n_words, max(1, math.ceil(q * n_words))) for q in fractions]


def removal_masks(scores: Sequence[float], fractions: Sequence[float] = FRACTIONS) -> tuple[np.ndarray, np.ndarray]:
    """(keep masks without the top-k words, keep masks with only them) for each fraction; the
    ranking is by score, highest first, ties by position (stable)."""
    n = len(scores)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ks = top_k_counts(n, fractions)
    without = np.ones((len(ks), n), dtype=bool)
    only = np.zeros((len(ks), n), dtype=bool)
    for i, k in enumerate(ks):
        without[i, order[:k]] = False
        only[i, order[:k]] = True
    return without, only


@dataclass
class Faithfulness:
    comprehensiveness: float
    sufficiency: float
    per_fraction: dict[str, dict[str, float]]


def faithfulness(model: ExplainableModel, text: Text, target: Target, scores: Sequence[float],
                 fractions: Sequence[float] = FRACTIONS) -> Faithfulness:
    """Comprehensiveness and sufficiency (AOPC) of one attribution (2 x len(fractions) + 1 passes)."""
    without, only = removal_masks(scores, fractions)
    keep = np.vstack([np.ones((1, len(text)), dtype=bool), without, only])
    p = model.to_probability(model.score(text, target, keep))
    full, p_without, p_only = p[0], p[1:1 + len(fractions)], p[1 + len(fractions):]
    comp, suff = full - p_without, full - p_only
    per = {f"{q:.1f}": {"comprehensiveness": float(c), "sufficiency": float(s)} for q, c, s in zip(fractions, comp, suff)}
    return Faithfulness(float(comp.mean()), float(suff.mean()), per)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation; None when either side is constant or has fewer than 2 words."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def typo(word: str, rng: np.random.Generator) -> str:
    """One length-keeping typo: swap two adjacent inner letters, or replace a letter by a
    keyboard neighbour (case kept). Returns the word unchanged when neither is possible."""
    inner = [i for i in range(1, len(word) - 2) if word[i] != word[i + 1] and word[i].isalpha() and word[i + 1].isalpha()]
    if inner and rng.random() < 0.5:
        i = int(rng.choice(inner))
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    subs = [i for i, c in enumerate(word) if _neighbours(c)]
    if not subs:
        return word
    i = int(rng.choice(subs))
    n = _neighbours(word[i])
    c = n[int(rng.integers(len(n)))]
    return word[:i] + (c.upper() if word[i].isupper() else c) + word[i + 1:]


def typo_variant(text: Text, target: Target, rng: np.random.Generator) -> tuple[Text, int] | None:
    """The text with one typo in a word of 3+ letters outside the target span (offsets kept);
    None when no word qualifies."""
    span = range(target.start, target.end) if target.start is not None else range(0)
    candidates = [i for i, w in enumerate(text.words) if i not in span and len(w) >= 3 and w.isalpha()]
    rng.shuffle(candidates)
    for i in candidates:
        new = typo(text.words[i], rng)
        if new != text.words[i]:
            a, b = text.offsets[i]
            words = list(text.words)
            words[i] = new
            return Text(words, list(text.offsets), text.text[:a] + new + text.text[b:]), i
    return None
