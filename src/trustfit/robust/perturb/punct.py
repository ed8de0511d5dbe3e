"""punct: punctuation and whitespace noise that keeps every word: punctuation dropped,
doubled or inserted between words, spaces doubled or dropped after punctuation. For NER the
edits are whole punctuation tokens tagged O, never placed inside an entity."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from trustfit.data.schema import Sentence
from trustfit.robust.perturb.base import Example, PerturbationError, with_text, with_words

INSERTABLE = (",", ";", "-", "!", "...", "\"", "(", ")")
PUNCT_RE = re.compile(r"^[^\w\s]+$", re.UNICODE)


class Punct:
    name = "punct"
    tasks = ("ner", "classify")
    adaptive = False

    def __init__(self, max_edits: int = 2) -> None:
        if int(max_edits) < 1:
            raise PerturbationError("punct: max_edits must be >= 1")
        self.max_edits = int(max_edits)

    def constraints(self) -> dict[str, Any]:
        return {"max_edits_per_sentence": self.max_edits, "inserted": list(INSERTABLE), "words_kept": True,
                "ner": "punctuation tokens tagged O, never inside an entity"}

    def apply(self, example: Example, rng: np.random.Generator) -> Example:
        n = int(rng.integers(1, self.max_edits + 1))
        if isinstance(example, Sentence):
            return self._sentence(example, n, rng)
        text = example.text
        for _ in range(n):
            text = self._text_edit(text, rng)
        return with_text(example, text)

    def _sentence(self, s: Sentence, n: int, rng: np.random.Generator) -> Sentence:
        tokens = list(s.tokens)
        tags = list(s.tags) if s.tags is not None else None

        def tag(i: int) -> str:
            return tags[i] if tags is not None else "O"

        for _ in range(n):
            droppable = [i for i, w in enumerate(tokens) if PUNCT_RE.match(w) and tag(i) == "O" and len(tokens) > 1]
            # an insertion point i puts the new token before word i: not before an I- tag
            slots = [i for i in range(len(tokens) + 1) if i == len(tokens) or not tag(i).startswith("I-")]
            ops = (["drop", "double"] if droppable else []) + ["insert"]
            op = ops[int(rng.integers(len(ops)))]
            if op == "insert":
                i = int(rng.choice(slots))
                tokens.insert(i, INSERTABLE[int(rng.integers(len(INSERTABLE)))])
                if tags is not None:
                    tags.insert(i, "O")
            else:
                i = int(rng.choice(droppable))
                if op == "drop":
                    del tokens[i]
                    if tags is not None:
                        del tags[i]
                else:
                    tokens.insert(i, tokens[i])
                    if tags is not None:
                        tags.insert(i, "O")
        return with_words(s, tokens, tags)

    @staticmethod
    def _text_edit(text: str, rng: np.random.Generator) -> str:
        puncts = [m.start() for m in re.finditer(r"(?<!\w)[^\w\s]|[^\w\s](?!\w)", text)]  # not inside a word (don't)
        spaces = [m.start() for m in re.finditer(r" ", text)]
        after_punct = [i + 1 for i in puncts if i + 1 < len(text) and text[i + 1] == " "]
        ops = (["drop", "double", "space-before"] if puncts else []) + (["double-space", "insert"] if spaces else []) \
            + (["no-space-after"] if after_punct else [])
        if not ops:
            return text
        op = ops[int(rng.integers(len(ops)))]
        if op in ("drop", "double", "space-before"):
            i = int(rng.choice(puncts))
            return {"drop": text[:i] + text[i + 1:], "double": text[:i + 1] + text[i:],
                    "space-before": text[:i] + " " + text[i:]}[op]
        if op == "no-space-after":
            i = int(rng.choice(after_punct))
            return text[:i] + text[i + 1:]
        i = int(rng.choice(spaces))
        if op == "double-space":
            return text[:i] + " " + text[i:]
        mark = INSERTABLE[int(rng.integers(len(INSERTABLE)))]
        return text[:i] + " " + mark + text[i:]
