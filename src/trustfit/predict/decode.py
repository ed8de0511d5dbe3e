"""Turning per-word label scores into one valid IOB2 sequence per sentence.

`argmax` takes each word's best label and repairs stray I- tags the conlleval way; `viterbi`
finds the sequence with the highest summed log-probability among valid IOB2 sequences only
(I-X must follow B-X or I-X), so a confident "B-ORG I-ORG" is not split by one word whose
argmax is I-LOC. Both are registered by name in `DECODERS`."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from trustfit.data.tags import repair_iob2, split_tag

Decoder = Callable[[np.ndarray, Sequence[str]], list[str]]


@lru_cache(maxsize=16)
def iob2_constraints(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(start, transition) masks as additive scores: 0 where allowed, -inf where not.
    start[j]: may a sentence begin with labels[j]; transition[i, j]: may labels[j] follow labels[i]."""
    n = len(labels)
    parts = [split_tag(t) for t in labels]
    start = np.zeros(n)
    trans = np.zeros((n, n))
    for j, (prefix, typ) in enumerate(parts):
        if prefix != "I":
            continue
        start[j] = -np.inf
        for i, (p_prev, t_prev) in enumerate(parts):
            if t_prev != typ or p_prev not in ("B", "I"):
                trans[i, j] = -np.inf
    return start, trans


def viterbi_iob2(log_probs: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The valid IOB2 tag sequence maximising the sum of `log_probs` [words, labels]."""
    if len(log_probs) == 0:
        return []
    start, trans = iob2_constraints(tuple(labels))
    score = log_probs[0] + start
    back = np.zeros(log_probs.shape, dtype=np.int64)
    for t in range(1, len(log_probs)):
        cand = score[:, None] + trans                     # [previous, next]
        back[t] = cand.argmax(0)
        score = cand[back[t], np.arange(len(labels))] + log_probs[t]
    best = [int(score.argmax())]
    for t in range(len(log_probs) - 1, 0, -1):
        best.append(int(back[t, best[-1]]))
    return [labels[i] for i in reversed(best)]


def argmax_iob2(log_probs: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Each word's most likely label, stray I- tags repaired (conlleval semantics)."""
    return repair_iob2([labels[i] for i in log_probs.argmax(-1)]) if len(log_probs) else []


DECODERS: dict[str, Decoder] = {"viterbi": viterbi_iob2, "argmax": argmax_iob2}
