"""entity-swap (NER): every entity mention replaced by another mention of the same type from
an inventory (the training data's, by default), or, with `novel=True` (family entity-novel),
by a made-up name that occurs nowhere in the inventory. Words and IOB2 tags are rebuilt
around the new mention, so the gold labels stay right by construction."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from trustfit.data.schema import Corpus, Sentence
from trustfit.data.tags import spans_from_tags
from trustfit.robust.perturb.base import Example, PerturbationError, with_words

Mention = tuple[str, ...]
SYLLABLES_START = ("ka", "lo", "vi", "ze", "mar", "to", "ri", "sa", "du", "qu", "bel", "no", "fa", "gri", "ul", "yo")
SYLLABLES_MID = ("ra", "len", "vo", "mi", "tas", "ko", "ne", "ru", "di", "sha", "lo", "ve")
SYLLABLES_END = ("n", "x", "ra", "lia", "stad", "mir", "ton", "vik", "rel", "sa", "do", "nek")
SUFFIX = {"ORG": ("Group", "Holdings", "United", "Institute", "Partners"), "LOC": ("", "", "Bay", "Valley")}


def mention_inventory(corpora: Iterable[Corpus]) -> dict[str, list[Mention]]:
    """Distinct mentions per entity type, in first-seen order."""
    seen: dict[str, dict[Mention, None]] = defaultdict(dict)
    for corpus in corpora:
        for s in corpus.sentences:
            if s.tags is None:
                continue
            for sp in spans_from_tags(s.tags):
                seen[sp.label][tuple(s.tokens[sp.start:sp.end])] = None
    return {t: list(m) for t, m in seen.items()}


def made_up_word(rng: np.random.Generator) -> str:
    parts = [SYLLABLES_START[int(rng.integers(len(SYLLABLES_START)))]]
    parts += [SYLLABLES_MID[int(rng.integers(len(SYLLABLES_MID)))] for _ in range(int(rng.integers(0, 2)))]
    parts.append(SYLLABLES_END[int(rng.integers(len(SYLLABLES_END)))])
    return "".join(parts).capitalize()


class EntitySwap:
    name = "entity-swap"
    tasks = ("ner",)
    adaptive = False

    def __init__(self, inventory: dict[str, list[Mention]] | None = None, novel: bool = False,
                 inventory_source: str = "") -> None:
        self.inventory = {t: list(m) for t, m in (inventory or {}).items() if m}
        self.novel = novel
        self.inventory_source = inventory_source
        self.known_words = {w.lower() for ms in self.inventory.values() for m in ms for w in m}
        if novel:
            self.name = "entity-novel"
        elif not self.inventory:
            raise PerturbationError("entity-swap: the mention inventory is empty; it needs labelled NER data with "
                                    "entities (--inventory FILE, or a model whose training file is readable)")

    def constraints(self) -> dict[str, Any]:
        if self.novel:
            return {"replacement": "made-up names (syllable words, capitalised) absent from the inventory",
                    "inventory_source": self.inventory_source, "same_type": True, "words_per_mention": "as the original (1-3)"}
        return {"replacement": "another mention of the same type", "inventory_source": self.inventory_source,
                "mentions_per_type": {t: len(m) for t, m in sorted(self.inventory.items())}, "same_type": True}

    def _novel(self, typ: str, n_words: int, rng: np.random.Generator) -> Mention:
        for _ in range(50):
            words = [made_up_word(rng) for _ in range(max(1, min(3, n_words)))]
            suffixes = SUFFIX.get(typ)
            if suffixes and len(words) < 3:
                sfx = suffixes[int(rng.integers(len(suffixes)))]
                if sfx:
                    words.append(sfx)
            if not any(w.lower() in self.known_words for w in words if w not in SUFFIX.get(typ, ())):
                return tuple(words)
        return tuple(words)

    def _replacement(self, typ: str, old: Mention, rng: np.random.Generator) -> Mention | None:
        if self.novel:
            return self._novel(typ, len(old), rng)
        pool = self.inventory.get(typ, [])
        for _ in range(20):  # another mention, not the same words
            if not pool:
                return None
            m = pool[int(rng.integers(len(pool)))]
            if m != old:
                return m
        return None

    def apply(self, example: Example, rng: np.random.Generator) -> Example:
        if not isinstance(example, Sentence):
            raise PerturbationError("entity-swap applies to NER sentences only")
        if example.tags is None:
            raise PerturbationError(f"{example.source}:{example.line}: entity-swap needs gold tags (labelled CoNLL data)")
        spans = spans_from_tags(example.tags)
        if not spans:
            return example
        tokens: list[str] = []
        tags: list[str] = []
        last = 0
        for sp in spans:
            tokens += example.tokens[last:sp.start]
            tags += example.tags[last:sp.start]
            new = self._replacement(sp.label, tuple(example.tokens[sp.start:sp.end]), rng)
            if new is None:
                new = tuple(example.tokens[sp.start:sp.end])
            tokens += list(new)
            tags += [f"B-{sp.label}"] + [f"I-{sp.label}"] * (len(new) - 1)
            last = sp.end
        tokens += example.tokens[last:]
        tags += example.tags[last:]
        return with_words(example, tokens, tags)
