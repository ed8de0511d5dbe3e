"""Turn sentences into model inputs that fit the encoder's length limit.

A Feature holds a run of *target* words (whose labels are trained and predicted) surrounded by
*context* words (fed to the encoder, never labelled). Two uses of one mechanism:

* long sentences are cut into consecutive target chunks, each with up to `stride` sub-tokens
  of overlap on both sides as context, so every word is a target exactly once (no truncation);
* document context (FLERT, Schweter & Akbik 2020): with `context_tokens > 0` the neighbouring
  words of the same document, across sentence boundaries, fill up to that many sub-tokens on
  each side.

`pack=True` packs consecutive sentences of a document into one feature as targets (up to
`pack_tokens` sub-tokens), with `context_tokens` of margin on both sides: every sentence sees its
neighbours in the pack at no extra cost (every sub-token fed is a target), and the margins add
context beyond the pack at the cost of their sub-tokens. A sentence longer than a pack is cut
into chunks with `stride` (or the context, if larger) of overlap. A packed feature's `weight` is
the number of sentences it holds (fractions for cut sentences), so batch sizes keep counting
sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from trustfit.encode.align import IGNORE_INDEX, first_positions, first_subtoken_labels


@dataclass
class Feature:
    """One encoder input: sub-token ids, loss labels, and where each target word's first
    sub-token sits (`positions`) together with its (sentence, word) address (`words`)."""

    input_ids: list[int]
    labels: list[int]
    positions: list[int]
    words: list[tuple[int, int]]
    weight: float = 1.0
    # sub-tokens of document context (FLERT margins) before and after a pack's targets, which a
    # pack may train without (train.margins); a cut sentence's stride overlap is not counted
    margins: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_words(self) -> int:
        """Target words (what words/s counts)."""
        return len(self.words)


@dataclass
class Specials:
    """The tokenizer's special ids around a single sequence (e.g. [CLS] ... [SEP])."""

    prefix: list[int]
    suffix: list[int]

    @property
    def count(self) -> int:
        return len(self.prefix) + len(self.suffix)


def chunk_words(piece_counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Greedy consecutive chunks [a, b) whose piece totals fit `budget` (a word always fits:
    callers cap words at fewer pieces than the budget)."""
    chunks, a, used = [], 0, 0
    for i, n in enumerate(piece_counts):
        if i > a and used + n > budget:
            chunks.append((a, i))
            a, used = i, 0
        used += n
    if piece_counts:
        chunks.append((a, len(piece_counts)))
    return chunks


def pack_sentences(sentence_counts: Sequence[Sequence[int]], budget: int,
                   cut_budget: int | None = None) -> list[tuple[int, int, bool]]:
    """Chunks (a, b, cut) of a document's flat word list [a, b): whole consecutive sentences while
    their pieces fit `budget` (cut False); a sentence longer than the budget is cut alone by
    chunk_words into pieces of at most `cut_budget` (default `budget`; cut True)."""
    cut_budget = budget if cut_budget is None else cut_budget
    chunks: list[tuple[int, int, bool]] = []
    a = k = used = 0
    for counts in sentence_counts:
        total = sum(counts)
        if total > budget:
            if k > a:
                chunks.append((a, k, False))
            chunks += [(k + x, k + y, True) for x, y in chunk_words(counts, cut_budget)]
            k += len(counts)
            a, used = k, 0
            continue
        if used + total > budget and k > a:
            chunks.append((a, k, False))
            a, used = k, 0
        used += total
        k += len(counts)
    if k > a:
        chunks.append((a, k, False))
    return chunks


def build_features(
    sentence_pieces: Sequence[Sequence[Sequence[int]]],
    sentence_labels: Sequence[Sequence[int] | None],
    documents: Sequence[Sequence[int]],
    specials: Specials,
    max_length: int,
    context_tokens: int = 0,
    stride: int = 32,
    pack: bool = False,
    pack_tokens: int = 64,
) -> list[Feature]:
    """Features for every word of every sentence; each word is a target exactly once.

    `sentence_pieces[s][w]` are the sub-token ids of word w of sentence s; `documents` lists
    sentence indices per document (context never crosses a document)."""
    budget = max_length - specials.count
    max_piece = max((len(p) for sent in sentence_pieces for p in sent), default=1)
    stride = max(0, min(stride, (budget - max_piece) // 2))
    features: list[Feature] = []
    for doc in documents:
        # flat word list of the document: (sentence, word, pieces)
        flat: list[tuple[int, int, Sequence[int]]] = [
            (s, w, p) for s in doc for w, p in enumerate(sentence_pieces[s])
        ]
        starts: dict[int, int] = {}
        for k, (s, w, _) in enumerate(flat):
            if w == 0:
                starts[s] = k
        counts_all = [len(p) for _, _, p in flat]
        if pack:
            # margins: the document context asked for around a pack; around the chunks of a sentence
            # longer than a pack, at least the stride (a cut word keeps context on both sides)
            room = max(0, (budget - max_piece) // 2)
            side, cut_side = min(context_tokens, room), min(max(context_tokens, stride), room)
            target_budget = max(max_piece, min(budget - 2 * side, pack_tokens))
            cut_budget = max(max_piece, min(target_budget, budget - 2 * cut_side))
            sentence_counts = [[len(p) for p in sentence_pieces[s]] for s in doc]
            for ka, kb, cut in pack_sentences(sentence_counts, target_budget, cut_budget):
                l, r = _margins(counts_all, ka, kb, 0, len(flat), cut_side if cut else side, budget)
                f = _make_feature(flat, l, ka, kb, r, sentence_labels, specials)
                f.weight = sum(1 / len(sentence_pieces[s]) for s, _ in f.words)
                if not cut:
                    f.margins = (sum(counts_all[l:ka]), sum(counts_all[kb:r]))
                features.append(f)
            continue
        for s in doc:
            counts = [len(p) for p in sentence_pieces[s]]
            if not counts:
                continue
            split = sum(counts) > budget
            target_budget = budget - 2 * stride if split else budget
            side = max(context_tokens, stride if split else 0)
            lo_limit = 0 if context_tokens > 0 else starts[s]
            hi_limit = len(flat) if context_tokens > 0 else starts[s] + len(counts)
            for a, b in chunk_words(counts, target_budget):
                ka, kb = starts[s] + a, starts[s] + b
                l, r = _margins(counts_all, ka, kb, lo_limit, hi_limit, side, budget)
                features.append(_make_feature(flat, l, ka, kb, r, sentence_labels, specials))
    return features


def without_margins(f: Feature, specials: Specials) -> Feature:
    """`f` without its document-context margins: the same targets, labels and weight, as the
    encoding with `context_tokens=0` would have packed them (a feature without margins is returned)."""
    left, right = f.margins
    if not left and not right:
        return f
    a, b = len(specials.prefix) + left, len(f.input_ids) - len(specials.suffix) - right
    ids = list(specials.prefix) + f.input_ids[a:b] + list(specials.suffix)
    labels = f.labels[:len(specials.prefix)] + f.labels[a:b] + f.labels[len(f.labels) - len(specials.suffix):]
    return Feature(ids, labels, [p - left for p in f.positions], list(f.words), f.weight)


def context_description(pack: bool, context_tokens: int, pack_tokens: int) -> str | None:
    """What document context a sentence sees under these encoding settings, in words (None:
    none); the model card and the robustness audit state it."""
    margins = f"{context_tokens} sub-tokens of document context on each side" if context_tokens else ""
    if not pack:
        return margins or None
    packed = f"neighbouring sentences of its document packed into inputs of up to {pack_tokens} sub-tokens"
    return f"{packed} and {margins}" if margins else packed


def _margins(counts: Sequence[int], ka: int, kb: int, lo: int, hi: int, side: int, budget: int) -> tuple[int, int]:
    """Extend targets [ka, kb) by whole context words within [lo, hi): up to `side` pieces on each
    side and `budget` in all (the left side takes the whole remainder when nothing is right)."""
    remaining = budget - sum(counts[ka:kb])
    l, used = ka, 0
    left_cap = min(side, remaining if kb >= hi else remaining // 2)
    while l > lo and used + counts[l - 1] <= left_cap:
        l -= 1
        used += counts[l]
    r, used_r = kb, 0
    while r < hi and used_r + counts[r] <= min(side, remaining - used):
        used_r += counts[r]
        r += 1
    return l, r


def _make_feature(flat, l, ka, kb, r, sentence_labels, specials: Specials) -> Feature:
    """Feature over flat words [l, r) whose targets are [ka, kb)."""
    span = flat[l:r]
    counts = [len(p) for _, _, p in span]
    targets = [ka <= k < kb for k in range(l, r)]
    word_labels = [sentence_labels[s][w] if sentence_labels[s] is not None else IGNORE_INDEX for s, w, _ in span]
    ids = list(specials.prefix) + [t for _, _, p in span for t in p] + list(specials.suffix)
    labels = ([IGNORE_INDEX] * len(specials.prefix) + first_subtoken_labels(counts, word_labels, targets)
              + [IGNORE_INDEX] * len(specials.suffix))
    firsts = first_positions(counts, offset=len(specials.prefix))
    positions = [p for p, t in zip(firsts, targets) if t]
    words = [(s, w) for (s, w, _), t in zip(span, targets) if t]
    return Feature(ids, labels, positions, words)
