"""Core data types: a Sentence of words with optional IOB2 tags, a Corpus of them grouped by
document, and the LabelSchema learned from training data and stored with the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from trustfit.errors import DataError, join_problems


@dataclass(frozen=True)
class Span:
    """An entity: words [start, end) of a sentence with a type; char offsets when known."""

    start: int
    end: int
    label: str


@dataclass
class Sentence:
    """One sentence: words, IOB2 tags (None when unlabelled), its document and source line."""

    tokens: list[str]
    tags: list[str] | None = None
    doc_id: int = 0
    source: str = "<memory>"
    line: int = 0
    # character offsets of each word in the original text (plain-text input only)
    offsets: list[tuple[int, int]] | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise DataError(
                f"{self.source}:{self.line}: {len(self.tokens)} tokens but {len(self.tags)} tags"
            )


@dataclass
class Corpus:
    """Sentences in file order; doc_id keeps document boundaries for document context."""

    sentences: list[Sentence] = field(default_factory=list)
    source: str = "<memory>"
    # True when the source marks documents (-DOCSTART-): only then is document context used
    has_documents: bool = False

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self):
        return iter(self.sentences)

    @property
    def n_words(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)

    @property
    def is_labelled(self) -> bool:
        return bool(self.sentences) and all(s.tags is not None for s in self.sentences)

    def documents(self) -> list[list[int]]:
        """Sentence indices grouped by document, in order; without document markers every
        sentence is its own document (unrelated sentences are no context for each other)."""
        if not self.has_documents:
            return [[i] for i in range(len(self.sentences))]
        docs: list[list[int]] = []
        last = None
        for i, s in enumerate(self.sentences):
            if s.doc_id != last:
                docs.append([])
                last = s.doc_id
            docs[-1].append(i)
        return docs

    def tag_set(self) -> set[str]:
        return {t for s in self.sentences if s.tags for t in s.tags}

    def entity_types(self) -> set[str]:
        return {t.split("-", 1)[1] for t in self.tag_set() if t != "O"}


@dataclass(frozen=True)
class LabelSchema:
    """The IOB2 label inventory of a model: 'O' first, then B-/I- for each entity type."""

    labels: tuple[str, ...]

    @classmethod
    def from_types(cls, types: Iterable[str]) -> "LabelSchema":
        labels = ["O"]
        for t in sorted(set(types)):
            labels += [f"B-{t}", f"I-{t}"]
        return cls(tuple(labels))

    @classmethod
    def from_corpus(cls, corpus: Corpus) -> "LabelSchema":
        types = corpus.entity_types()
        if not types:
            raise DataError(
                f"{corpus.source}: no entity tags found (every tag is 'O'). Check that the tag column "
                "is right (--tag-column) and that the file is a labelled NER file."
            )
        return cls.from_types(types)

    @property
    def label2id(self) -> dict[str, int]:
        return {l: i for i, l in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def check_corpus(self, corpus: Corpus, unknown_to_o: bool = False) -> Corpus:
        """Every tag of `corpus` must be known; with `unknown_to_o` unknown tags become 'O'."""
        known = set(self.labels)
        problems: list[str] = []
        unknown: set[str] = set()
        for s in corpus.sentences:
            if s.tags is None:
                continue
            for j, t in enumerate(s.tags):
                if t not in known:
                    unknown.add(t)
                    if unknown_to_o:
                        s.tags[j] = "O"
                    else:
                        problems.append(f"{s.source}: sentence at line {s.line}, word {j + 1} {s.tokens[j]!r}: tag {t!r}")
        if problems:
            raise DataError(
                join_problems(
                    f"{corpus.source}: {len(problems)} tags were never seen in training "
                    f"({', '.join(sorted(unknown))}); the model knows {', '.join(self.labels)}. "
                    "Fix the file, or map unknown tags to O explicitly with --unknown-tags o.",
                    problems,
                )
            )
        return corpus

