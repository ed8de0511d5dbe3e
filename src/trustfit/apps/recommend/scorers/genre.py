"""Genre match: cosine between the genres of the items the user liked (summed) and the item's."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trustfit.apps.recommend.history import Query


class GenreMatch:
    name, on_candidates_only = "genre", False

    def score(self, queries: Sequence[Query], candidates: Sequence[np.ndarray], ctx) -> list[np.ndarray]:
        g = ctx.genres / np.maximum(np.linalg.norm(ctx.genres, axis=1, keepdims=True), 1e-9)
        out = []
        for q, c in zip(queries, candidates):
            liked = [ctx.index[i] for i in q.liked]
            if not liked:
                out.append(np.zeros(len(c), dtype=np.float32))
                continue
            taste = ctx.genres[liked].sum(0)
            out.append(g[c] @ (taste / max(float(np.linalg.norm(taste)), 1e-9)))
        return out
