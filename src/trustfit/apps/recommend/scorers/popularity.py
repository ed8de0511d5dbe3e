"""Popularity (interactions so far) and recency (interactions in the last 30 days), both log(1+n)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trustfit.apps.recommend.history import Query


class Popularity:
    name, on_candidates_only = "popularity", False

    def score(self, queries: Sequence[Query], candidates: Sequence[np.ndarray], ctx) -> list[np.ndarray]:
        return [q.popularity[c] for q, c in zip(queries, candidates)]


class Recency:
    name, on_candidates_only = "recency", False

    def score(self, queries: Sequence[Query], candidates: Sequence[np.ndarray], ctx) -> list[np.ndarray]:
        return [q.recency[c] for q, c in zip(queries, candidates)]
