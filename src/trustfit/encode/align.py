"""Pure word <-> sub-token projection. The first sub-token of a word carries its label; the
other sub-tokens are ignored in the loss (-100), and a word's prediction is its first
sub-token's. These functions hold no tokenizer state and are property-tested."""

from __future__ import annotations

from typing import Sequence, TypeVar

IGNORE_INDEX = -100
T = TypeVar("T")


def group_pieces(word_ids: Sequence[int | None], input_ids: Sequence[int], n_words: int,
                 unk_id: int, max_pieces: int) -> list[list[int]]:
    """Sub-token ids of each word from a fast tokenizer's `word_ids()`.

    A word that the tokenizer maps to nothing (e.g. a lone U+FEFF or control character) gets
    [unk_id], so every word has a first sub-token and hence a prediction; a word longer than
    `max_pieces` sub-tokens keeps only its first `max_pieces` (its label sits on the first)."""
    pieces: list[list[int]] = [[] for _ in range(n_words)]
    for wid, tid in zip(word_ids, input_ids):
        if wid is not None and len(pieces[wid]) < max_pieces:
            pieces[wid].append(tid)
    for p in pieces:
        if not p:
            p.append(unk_id)
    return pieces


def first_subtoken_labels(piece_counts: Sequence[int], word_labels: Sequence[int],
                          labelled: Sequence[bool] | None = None) -> list[int]:
    """Sub-token label row: a word's label on its first piece, IGNORE_INDEX on the rest and on
    words that are only context (`labelled[i]` False)."""
    out: list[int] = []
    for i, (n, lab) in enumerate(zip(piece_counts, word_labels)):
        keep = labelled is None or labelled[i]
        out.append(lab if keep else IGNORE_INDEX)
        out.extend([IGNORE_INDEX] * (n - 1))
    return out


def first_positions(piece_counts: Sequence[int], offset: int = 0) -> list[int]:
    """Index of each word's first sub-token in the concatenated piece sequence (+ offset)."""
    pos, out = offset, []
    for n in piece_counts:
        out.append(pos)
        pos += n
    return out


def word_values(token_values: Sequence[T], piece_counts: Sequence[int], offset: int = 0) -> list[T]:
    """Project per-sub-token values (predictions, scores) back to one value per word."""
    return [token_values[p] for p in first_positions(piece_counts, offset)]
