"""The one protocol every perturbation family implements, and helpers they share.

An example is an NER `Sentence` (words + IOB2 tags) or a classification `TextExample`. A
perturbation returns a new example whose gold labels are still right by construction (NER:
as many tags as words, valid IOB2, entity types kept); it never mutates its input."""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np

from trustfit.data.schema import Sentence
from trustfit.data.text import TextExample
from trustfit.errors import TrustfitError

Example = Union[Sentence, TextExample]
TASKS = ("ner", "classify")


class PerturbationError(TrustfitError):
    """A perturbation family cannot be used as asked (unknown name, wrong task, bad option)."""


@runtime_checkable
class Perturbation(Protocol):
    """A seeded, label-preserving change to one example."""

    name: str
    tasks: tuple[str, ...]  # which tasks it applies to
    adaptive: bool  # True when it queries the model (the audit then counts its queries)

    def apply(self, example: Example, rng: np.random.Generator) -> Example:
        """A perturbed copy of `example` (the example itself, unchanged, when nothing applies)."""
        ...

    def constraints(self) -> dict[str, Any]:
        """The limits this family works under, recorded beside every success rate."""
        ...


def words_of(example: Example) -> list[str]:
    """The words a share-of-words-changed is counted over."""
    return list(example.tokens) if isinstance(example, Sentence) else example.text.split()


def changed_share(before: Example, after: Example) -> float:
    """Share of the original words that were edited, removed or had something inserted next to
    them (a word-level diff; 0 when nothing changed)."""
    a, b = words_of(before), words_of(after)
    if a == b:
        return 0.0
    matched = sum(block.size for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks())
    return min(1.0, (max(len(a), len(b)) - matched) / len(a)) if a else 1.0


def is_changed(before: Example, after: Example) -> bool:
    if isinstance(before, Sentence):
        return before.tokens != after.tokens or before.tags != after.tags
    return before.text != after.text


def with_words(sentence: Sentence, tokens: list[str], tags: list[str] | None) -> Sentence:
    """A copy of an NER sentence with new words/tags (character offsets no longer apply)."""
    return dataclasses.replace(sentence, tokens=tokens, tags=tags, offsets=None, text=None)


def with_text(example: TextExample, text: str) -> TextExample:
    return dataclasses.replace(example, text=text, meta=dict(example.meta))


WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)


def text_words(text: str, min_length: int = 1) -> list[tuple[int, int]]:
    """Character spans of the alphabetic words of a text."""
    return [m.span() for m in WORD_RE.finditer(text) if m.end() - m.start() >= min_length]


def replace_spans(text: str, edits: dict[tuple[int, int], str]) -> str:
    """The text with each (start, end) span replaced; spans must not overlap."""
    out, last = [], 0
    for (a, b), new in sorted(edits.items()):
        out += [text[last:a], new]
        last = b
    return "".join(out + [text[last:]])
