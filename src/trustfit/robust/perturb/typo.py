"""typo: keyboard-neighbour substitutions, adjacent swaps, insertions and deletions, in at most
`max_words` words of a sentence (words of `min_length` letters or more; first letters kept)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trustfit.data.schema import Sentence
from trustfit.robust.perturb.base import Example, PerturbationError, replace_spans, text_words, with_text, with_words

KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
OPS = ("swap", "substitute", "insert", "delete")


def keyboard_neighbours(c: str) -> str:
    """Letters next to `c` on a QWERTY row (lower case; empty for non-letters)."""
    for row in KEYBOARD_ROWS:
        i = row.find(c.lower())
        if i >= 0:
            return row[max(0, i - 1):i] + row[i + 1:i + 2]
    return ""


def _cased(c: str, like: str) -> str:
    return c.upper() if like.isupper() else c


def typo_word(word: str, rng: np.random.Generator, ops: Sequence[str] = OPS) -> str:
    """One typo in `word` by an operation drawn from `ops` among those possible; the first
    letter is kept (people rarely mistype it, and readers rely on it). Unchanged when none applies."""
    swappable = [i for i in range(1, len(word) - 1)
                 if word[i] != word[i + 1] and word[i].isalpha() and word[i + 1].isalpha()]
    keyed = [i for i in range(1, len(word)) if keyboard_neighbours(word[i])]
    # each operation with the positions it may touch (deletion: any but the first letter, 4+ letters)
    where = {"swap": swappable, "substitute": keyed, "insert": keyed, "delete": [0] if len(word) >= 4 else []}
    possible = [op for op in OPS if op in ops and where[op]]
    if not possible:
        return word
    op = possible[int(rng.integers(len(possible)))]
    if op == "swap":
        i = int(rng.choice(swappable))
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "delete":
        i = int(rng.integers(1, len(word)))
        return word[:i] + word[i + 1:]
    i = int(rng.choice(keyed))
    n = keyboard_neighbours(word[i])
    c = _cased(n[int(rng.integers(len(n)))], word[i])
    return word[:i] + c + word[i + 1:] if op == "substitute" else word[:i] + c + word[i:]


class Typo:
    name = "typo"
    tasks = ("ner", "classify")
    adaptive = False

    def __init__(self, max_words: int = 2, min_length: int = 3, ops: Sequence[str] | str = OPS) -> None:
        if isinstance(ops, str):
            ops = [o for o in ops.replace("+", " ").split() if o]
        unknown = [o for o in ops if o not in OPS]
        if unknown or not ops:
            raise PerturbationError(f"typo: unknown operation(s) {unknown or ops}; known: {', '.join(OPS)}")
        if int(max_words) < 1 or int(min_length) < 2:
            raise PerturbationError("typo: max_words must be >= 1 and min_length >= 2")
        self.max_words, self.min_length, self.ops = int(max_words), int(min_length), tuple(ops)

    def constraints(self) -> dict[str, Any]:
        return {"max_words_per_sentence": self.max_words, "min_word_length": self.min_length,
                "operations": list(self.ops), "first_letter_kept": True}

    def _eligible(self, w: str) -> bool:
        return len(w) >= self.min_length and w.isalpha()

    def apply(self, example: Example, rng: np.random.Generator) -> Example:
        if isinstance(example, Sentence):
            idx = [i for i, w in enumerate(example.tokens) if self._eligible(w)]
            if not idx:
                return example
            chosen = rng.choice(idx, size=min(self.max_words, len(idx)), replace=False)
            tokens = list(example.tokens)
            for i in chosen:
                tokens[int(i)] = typo_word(tokens[int(i)], rng, self.ops)
            return with_words(example, tokens, None if example.tags is None else list(example.tags))
        spans = text_words(example.text, self.min_length)
        if not spans:
            return example
        chosen = rng.choice(len(spans), size=min(self.max_words, len(spans)), replace=False)
        edits = {spans[int(i)]: typo_word(example.text[slice(*spans[int(i)])], rng, self.ops) for i in chosen}
        return with_text(example, replace_spans(example.text, edits))
