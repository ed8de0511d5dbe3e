"""The explainability protocol: what is explained (`Text`, `Target`), what comes out
(`Attribution`: one score per input word), and the `Explainer` interface every method follows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from trustfit.predict.ner import tokenize_text


@dataclass
class Text:
    """Words to explain, with their character offsets in `text` (plain text keeps its spacing;
    pre-split words such as CoNLL tokens are joined with single spaces)."""

    words: list[str]
    offsets: list[tuple[int, int]]
    text: str

    @classmethod
    def from_string(cls, text: str) -> "Text":
        """Split with the same word rule as `trustfit predict` (trustfit.predict.ner.WORD_RE)."""
        words, offsets = tokenize_text(text)
        return cls(words, offsets, text)

    @classmethod
    def from_words(cls, words: list[str]) -> "Text":
        offsets, pos = [], 0
        for w in words:
            offsets.append((pos, pos + len(w)))
            pos += len(w) + 1
        return cls(list(words), offsets, " ".join(words))

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class Target:
    """What a score explains. Classification: one class (`label`, its index). NER: one entity
    span of words [start, end) with its predicted tags; the explained value is the summed
    log-probability of those tags over the span's words."""

    task: str
    label: str
    class_index: int | None = None
    start: int | None = None
    end: int | None = None
    tag_ids: tuple[int, ...] | None = None
    probability: float | None = None  # the model's probability for the target on the clean input

    def describe(self, text: Text | None = None) -> str:
        if self.task == "ner" and self.start is not None:
            span = " ".join(text.words[self.start:self.end]) if text else f"words {self.start}-{self.end}"
            return f"{span!r} as {self.label}"
        return f"class {self.label}"

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if "tag_ids" in out:
            out["tag_ids"] = list(out["tag_ids"])
        return out


@dataclass
class Attribution:
    """One explanation: a score per word (positive: the word raises the explained value), the
    target, the method with its settings, and what it cost."""

    words: list[str]
    scores: list[float]
    target: Target
    method: str
    settings: dict[str, Any]
    forward_passes: int
    seconds: float
    text: str = ""
    offsets: list[tuple[int, int]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "settings": self.settings, "target": self.target.to_json(),
                "text": self.text, "words": self.words, "offsets": [list(o) for o in self.offsets],
                "scores": [round(float(s), 6) for s in self.scores], "forward_passes": self.forward_passes,
                "seconds": round(self.seconds, 4), **({"extra": self.extra} if self.extra else {})}


class Explainer(Protocol):
    """A word-attribution method bound to one model. New methods: one file with a class that
    has these members, plus one line in `trustfit.explain.EXPLAINERS`."""

    name: str
    stochastic: bool  # True when the seed changes the answer (stability across seeds is measured)

    def explain(self, text: Text, target: Target) -> Attribution: ...
