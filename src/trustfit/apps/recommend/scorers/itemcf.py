"""Item-item collaborative filtering: cosine similarity of items over the users who liked them
(in the history only), averaged over the items the user liked (the mean, not the sum, keeps the
scale alike for users with few and many liked items, which the combiner's weights need)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trustfit.apps.recommend.history import Query


def item_similarity(liked_by_user: dict[str, list[str]], index: dict[str, int]) -> np.ndarray:
    """[items, items] cosine of the binary user x item matrix of liked items; diagonal 0."""
    users = [u for u, items in liked_by_user.items() if items]
    x = np.zeros((len(users), len(index)), dtype=np.float32)
    for r, u in enumerate(users):
        x[r, [index[i] for i in liked_by_user[u]]] = 1.0
    co = x.T @ x
    norm = np.sqrt(np.maximum(np.diag(co), 1e-9))
    sim = co / norm[:, None] / norm[None, :]
    np.fill_diagonal(sim, 0.0)
    return sim


class ItemCF:
    name, on_candidates_only = "item-cf", False

    def score(self, queries: Sequence[Query], candidates: Sequence[np.ndarray], ctx) -> list[np.ndarray]:
        out = []
        for q, c in zip(queries, candidates):
            liked = [ctx.index[i] for i in q.liked]
            if not liked or ctx.item_similarity is None:
                out.append(np.zeros(len(c), dtype=np.float32))
            else:
                out.append(ctx.item_similarity[liked][:, c].mean(0))
        return out
