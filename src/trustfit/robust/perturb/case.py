"""case: the whole sentence in lower case, upper case or title case (NER models lean on
capitals). `mode=random` draws one of the three per sentence."""

from __future__ import annotations

from typing import Any

import numpy as np

from trustfit.data.schema import Sentence
from trustfit.robust.perturb.base import Example, PerturbationError, with_text, with_words

MODES = ("lower", "upper", "title")


def _title(w: str) -> str:
    return w[:1].upper() + w[1:].lower()


def recase(text: str, mode: str) -> str:
    if mode == "lower":
        return text.lower()
    if mode == "upper":
        return text.upper()
    return " ".join(_title(w) for w in text.split(" "))


class Case:
    name = "case"
    tasks = ("ner", "classify")
    adaptive = False

    def __init__(self, mode: str = "random") -> None:
        if mode not in MODES + ("random",):
            raise PerturbationError(f"case: unknown mode {mode!r}; use one of {', '.join(MODES)} or random")
        self.mode = mode

    def constraints(self) -> dict[str, Any]:
        return {"mode": self.mode, "modes": list(MODES) if self.mode == "random" else [self.mode],
                "applies_to": "every word of the sentence"}

    def apply(self, example: Example, rng: np.random.Generator) -> Example:
        mode = MODES[int(rng.integers(len(MODES)))] if self.mode == "random" else self.mode
        if isinstance(example, Sentence):
            tokens = [recase(w, mode) if mode != "title" else _title(w) for w in example.tokens]
            return with_words(example, tokens, None if example.tags is None else list(example.tags))
        return with_text(example, recase(example.text, mode))
