"""Ranking signals: one file a signal, a registry by name. A signal scores, for each query, the
catalogue items named by that query's candidate indices (higher = more likely liked).

Cheap signals (popularity, recency, genre, item-cf, embedding) score the whole catalogue; the
fine-tuned pair model scores only the first stage's candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from trustfit.apps.recommend.catalogue import Catalogue
from trustfit.apps.recommend.history import Query


@dataclass
class RankContext:
    """Everything a signal may read: the catalogue, item embeddings and genres, the item-item
    similarity of the history and the pair model."""

    catalogue: Catalogue
    item_vectors: np.ndarray  # [items, hidden], unit length (pretrained backbone)
    item_similarity: np.ndarray | None = None  # [items, items], from the history (item-cf)
    pair_model: Any = None  # ClassifierPredictor of the fine-tuned pair model

    def __post_init__(self) -> None:
        self.ids = self.catalogue.ids
        self.index = self.catalogue.index
        self.texts = [self.catalogue.items[i].text for i in self.ids]
        genres = sorted({g for it in self.catalogue.items.values() for g in it.genres})
        g_index = {g: k for k, g in enumerate(genres)}
        self.genres = np.zeros((len(self.ids), max(len(genres), 1)), dtype=np.float32)
        for i, iid in enumerate(self.ids):
            for g in self.catalogue.items[iid].genres:
                self.genres[i, g_index[g]] = 1.0



class Signal(Protocol):
    name: str
    on_candidates_only: bool  # True: too costly for the whole catalogue (a second-stage signal)

    def score(self, queries: Sequence[Query], candidates: Sequence[np.ndarray], ctx: RankContext) -> list[np.ndarray]:
        ...


def _registry() -> dict[str, type]:
    from trustfit.apps.recommend.scorers.embedding import EmbeddingSimilarity
    from trustfit.apps.recommend.scorers.genre import GenreMatch
    from trustfit.apps.recommend.scorers.itemcf import ItemCF
    from trustfit.apps.recommend.scorers.pair import PairModel
    from trustfit.apps.recommend.scorers.popularity import Popularity, Recency

    return {s.name: s for s in (PairModel, EmbeddingSimilarity, ItemCF, GenreMatch, Popularity, Recency)}


SIGNALS = ("pair", "embedding", "item-cf", "genre", "popularity", "recency")


def make_signal(name: str) -> Signal:
    reg = _registry()
    if name not in reg:
        raise KeyError(f"unknown signal {name!r}; known: {', '.join(reg)}")
    return reg[name]()
