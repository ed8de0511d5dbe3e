"""word-sub (classification): a greedy, model-guided word substitution attack.

Words are ranked by importance (leave one word out, measure the drop of the gold class's
probability), then replaced in that order by the candidate that lowers that probability
most; candidates are the nearest neighbours of the word in the backbone's own input-embedding
matrix above a cosine threshold (whole-word vocabulary entries only, stop words never touched
or inserted). The attack stops at the first change of the predicted class, when the share of
changed words reaches `max_share`, or when the query budget is spent (Jin et al.'s TextFooler
search with the model's embeddings in place of counter-fitted vectors)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from trustfit.data.text import TextExample
from trustfit.robust.perturb.base import Example, PerturbationError, replace_spans, text_words, with_text

# function words never replaced nor used as replacements (a common English stop-word list)
STOP_WORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves""".split())


class EmbeddingNeighbours:
    """Nearest whole-word vocabulary entries by cosine of the input embeddings."""

    def __init__(self, embeddings: np.ndarray, vocab: dict[str, int], lowercase: bool = True) -> None:
        self.lowercase = lowercase
        words = [(w, i) for w, i in vocab.items() if w.isalpha() and len(w) >= 2 and w.lower() not in STOP_WORDS]
        self.words = [w for w, _ in words]
        self.word_index = {w: k for k, (w, _) in enumerate(words)}
        mat = embeddings[[i for _, i in words]].astype(np.float32)
        self.unit = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)

    @classmethod
    def from_model(cls, model, tokenizer) -> "EmbeddingNeighbours":
        emb = model.get_input_embeddings().weight.detach().float().cpu().numpy()
        return cls(emb, tokenizer.get_vocab(), lowercase=bool(getattr(tokenizer, "do_lower_case", False)))

    def __call__(self, word: str, k: int, threshold: float) -> list[tuple[str, float]]:
        key = word.lower() if self.lowercase else word
        j = self.word_index.get(key)
        if j is None:
            return []
        sims = self.unit @ self.unit[j]
        sims[j] = -1.0
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.argsort(-sims[top])]
        return [(self.words[t], float(sims[t])) for t in top if sims[t] >= threshold and self.words[t].lower() != key]


def match_case(new: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


class WordSub:
    name = "word-sub"
    tasks = ("classify",)
    adaptive = True

    def __init__(self, score: Callable[[Sequence[TextExample]], np.ndarray] | None = None, labels: Sequence[str] = (),
                 neighbours: EmbeddingNeighbours | None = None, threshold: float = 0.5, candidates: int = 8,
                 max_share: float = 0.25, budget: int = 300, min_length: int = 3) -> None:
        """`score(examples) -> probabilities [n, classes]` is the attacked model."""
        if score is None or neighbours is None:
            raise PerturbationError("word-sub attacks a classifier: it needs the model (use it in "
                                    "`trustfit audit robustness` on a classification model)")
        if not 0 < float(max_share) <= 1 or int(budget) < 2 or int(candidates) < 1 or not -1 <= float(threshold) < 1:
            raise PerturbationError("word-sub: need 0 < max_share <= 1, budget >= 2, candidates >= 1, -1 <= threshold < 1")
        self.score, self.labels, self.neighbours = score, list(labels), neighbours
        self.threshold, self.candidates = float(threshold), int(candidates)
        self.max_share, self.budget, self.min_length = float(max_share), int(budget), int(min_length)
        self.last_queries = 0

    def constraints(self) -> dict[str, Any]:
        return {"candidates": "nearest neighbours in the model's input-embedding matrix (whole-word entries)",
                "cosine_threshold": self.threshold, "candidates_per_word": self.candidates,
                "max_share_of_words_changed": self.max_share, "query_budget_per_example": self.budget,
                "min_word_length": self.min_length, "stop_words": "never replaced or inserted",
                "search": "greedy by leave-one-out importance; stops at the first success",
                "attacked": "examples the model classifies correctly (others count as already wrong)"}

    def apply(self, example: Example, rng: np.random.Generator) -> Example:
        if not isinstance(example, TextExample):
            raise PerturbationError("word-sub applies to classification examples only; use it on a classification model")
        if example.label not in self.labels:
            raise PerturbationError(f"{example.source}:{example.line}: word-sub needs a gold label the model knows "
                                    f"(got {example.label!r})")
        gold = self.labels.index(example.label)
        text = example.text
        spans = [sp for sp in text_words(text, self.min_length) if text[slice(*sp)].lower() not in STOP_WORDS]
        base = self.score([example])[0]
        queries = 1
        if int(np.argmax(base)) != gold or not spans:
            self.last_queries = queries
            return example
        budget = self.budget
        # leave-one-out importance of each candidate word (within the budget)
        spans = spans[: max(1, budget - queries - 1)]
        left_out = [with_text(example, replace_spans(text, {sp: ""})) for sp in spans]
        drop = base[gold] - self.score(left_out)[:, gold]
        queries += len(left_out)
        order = np.argsort(-drop, kind="stable")
        limit = max(1, int(np.floor(self.max_share * len(text_words(text)))))
        edits: dict[tuple[int, int], str] = {}
        current = base[gold]
        for k in order:
            if queries >= budget or len(edits) >= limit:
                break
            sp = spans[int(k)]
            word = text[slice(*sp)]
            cands = [match_case(w, word) for w, _ in self.neighbours(word, self.candidates, self.threshold)]
            cands = cands[: budget - queries]
            if not cands:
                continue
            trials = [with_text(example, replace_spans(text, {**edits, sp: c})) for c in cands]
            probs = self.score(trials)
            queries += len(trials)
            best = int(np.argmin(probs[:, gold]))
            if probs[best, gold] < current:
                edits[sp], current = cands[best], probs[best, gold]
                if int(np.argmax(probs[best])) != gold:
                    break
        self.last_queries = queries
        return with_text(example, replace_spans(text, edits)) if edits else example
