"""Glue between a Corpus and the pure encoding functions: run the fast tokenizer once over all
sentences (pre-split words), group sub-tokens per word, then build windows/context features."""

from __future__ import annotations

from typing import Sequence

from trustfit.data.schema import Corpus, LabelSchema
from trustfit.encode.align import group_pieces
from trustfit.encode.windows import Feature, Specials, build_features
from trustfit.errors import ModelError


def tokenizer_specials(tokenizer) -> Specials:
    """Special ids the tokenizer puts around one sequence, found by probing (model-agnostic)."""
    enc = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
    wids = enc.word_ids()
    ids = enc["input_ids"]
    inside = [i for i, w in enumerate(wids) if w is not None]
    return Specials(prefix=list(ids[: inside[0]]), suffix=list(ids[inside[-1] + 1:]))


def model_max_length(tokenizer, config) -> int:
    """Longest input the model accepts: the tokenizer's limit, capped by position embeddings."""
    limits = [getattr(tokenizer, "model_max_length", 512) or 512]
    mpe = getattr(config, "max_position_embeddings", None)
    if mpe:
        # RoBERTa-style models reserve padding_idx + 1 positions
        limits.append(mpe - (2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0))
    return int(min(min(limits), 4096))


def word_pieces(tokenizer, sentences: Sequence[Sequence[str]], max_word_pieces: int = 16,
                batch: int = 2048) -> list[list[list[int]]]:
    """Sub-token ids per word per sentence (a word without pieces gets [UNK])."""
    if not getattr(tokenizer, "is_fast", True):
        raise ModelError("trustfit needs a fast (Rust) tokenizer for word alignment; this model folder has only a slow one. "
                         "Add a tokenizer.json (e.g. save it with transformers' AutoTokenizer).")
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    out: list[list[list[int]]] = []
    for i in range(0, len(sentences), batch):
        chunk = [list(s) if len(s) else ["."] for s in sentences[i:i + batch]]
        enc = tokenizer(chunk, is_split_into_words=True, add_special_tokens=False)
        for j, words in enumerate(chunk):
            n = len(sentences[i + j])
            out.append(group_pieces(enc.word_ids(j), enc["input_ids"][j], n, unk, max_word_pieces) if n else [])
    return out


def encode_corpus(corpus: Corpus, tokenizer, schema: LabelSchema | None, max_length: int,
                  context_tokens: int = 0, stride: int = 32, max_word_pieces: int = 16, pack: bool = False,
                  pack_tokens: int = 64) -> list[Feature]:
    """Features covering every word of `corpus` exactly once as a target."""
    pieces = word_pieces(tokenizer, [s.tokens for s in corpus.sentences], max_word_pieces)
    if schema is not None and corpus.is_labelled:
        l2i = schema.label2id
        labels = [[l2i[t] for t in s.tags] for s in corpus.sentences]
    else:
        labels = [None] * len(corpus)
    return build_features(pieces, labels, corpus.documents(), tokenizer_specials(tokenizer),
                          max_length, context_tokens, stride, pack, pack_tokens)
