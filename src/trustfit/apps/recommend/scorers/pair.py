"""The fine-tuned pair model: log-odds that the user (profile text) likes the item (item text)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trustfit.apps.recommend.history import LIKED, Query
from trustfit.data.text import TextCorpus, TextExample


class PairModel:
    name, on_candidates_only = "pair", True

    def score(self, queries: Sequence[Query], candidates: Sequence[np.ndarray], ctx) -> list[np.ndarray]:
        examples = [TextExample(q.profile, None, ctx.texts[j]) for q, c in zip(queries, candidates) for j in c]
        if not examples:
            return [np.zeros(0, dtype=np.float32) for _ in queries]
        predictor = ctx.pair_model
        logits, _ = predictor.logits(TextCorpus(examples))
        liked = predictor.labels.index(LIKED)
        margin = logits[:, liked] - np.delete(logits, liked, axis=1).max(1)
        bounds = np.cumsum([0] + [len(c) for c in candidates])
        return [margin[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
