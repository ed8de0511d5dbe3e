"""Ranking metrics (pure functions). One relevant item per ranking event (the item the user went
on to like), so nDCG@k = 1 / log2(1 + rank) when rank <= k, HitRate@k = [rank <= k], MRR = 1 / rank.
Ties count half (the expected rank under a random tie-break)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def expected_rank(target: float, others: np.ndarray) -> float:
    """1-based rank of a score among competitors, ties counted half."""
    return 1.0 + float((others > target).sum()) + 0.5 * float((others == target).sum())


def ndcg_at(rank: float, k: int = 10) -> float:
    return 1.0 / float(np.log2(1.0 + rank)) if rank <= k else 0.0


def hit_at(rank: float, k: int = 10) -> float:
    return 1.0 if rank <= k else 0.0


def reciprocal_rank(rank: float) -> float:
    return 1.0 / rank


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(score of a liked item > score of a not-liked one), ties half; None without both kinds."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def mean_user_auc(per_user: dict[str, tuple[list[float], list[float]]]) -> tuple[float | None, int]:
    """AUC within each user (liked vs not-liked items they rated), averaged over users with both."""
    values = [a for a in (auc(p, n) for p, n in per_user.values()) if a is not None]
    return (float(np.mean(values)) if values else None), len(values)


def coverage(lists: Iterable[Sequence[int]], n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    seen = set()
    for items in lists:
        seen.update(int(i) for i in items)
    return len(seen) / n_items if n_items else 0.0


def intra_list_diversity(items: Sequence[int], vectors: np.ndarray) -> float:
    """1 - mean pairwise cosine of the list's item vectors (unit length)."""
    if len(items) < 2:
        return 0.0
    v = vectors[np.asarray(items)]
    sim = v @ v.T
    n = len(items)
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
