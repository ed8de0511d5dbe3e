"""NER inference over a Corpus: every word gets exactly one tag and a probability.

Features are encoded with the same windows/context as training, sorted by length and run in
batches with dynamic padding under `torch.inference_mode`; each word's label distribution is
read at its first sub-token and a sentence's tags are decoded from them (`predict/decode.py`:
IOB2-constrained Viterbi by default, or argmax repaired the conlleval way)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from trustfit.data.schema import Corpus, LabelSchema, Sentence
from trustfit.data.tags import spans_from_tags
from trustfit.encode.batching import collate
from trustfit.encode.tokenize import encode_corpus, model_max_length
from trustfit.errors import TrustfitError
from trustfit.hardware import resolve_precision
from trustfit.predict import inference, token_budget_batches
from trustfit.predict.decode import DECODERS

# Plain-text tokenisation rule: dotted abbreviations ("U.S."), runs of letters/digits joined by
# inner apostrophes, hyphens, dots or commas ("1,000.50", "don't", "co-op", "1996-08-22"), or
# any single other non-space character ("$", ",", "?"). Character offsets of every word are kept.
WORD_RE = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'’.,]\w+)*|[^\w\s]", re.UNICODE)


def tokenize_text(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split a line of text into words with (start, end) character offsets."""
    words, offsets = [], []
    for m in WORD_RE.finditer(text):
        words.append(m.group())
        offsets.append((m.start(), m.end()))
    return words, offsets


def corpus_from_lines(lines: Iterable[str], source: str = "<stdin>") -> Corpus:
    """One sentence per line (blank lines give empty sentences, which predict nothing)."""
    sents = []
    for i, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        words, offsets = tokenize_text(text)
        sents.append(Sentence(tokens=words, tags=None, doc_id=0, source=source, line=i, offsets=offsets, text=text))
    return Corpus(sents, source=source)


@dataclass
class Prediction:
    tags: list[list[str]]
    scores: list[list[float]]


class NerPredictor:
    """Wraps a token-classification model + tokenizer with trustfit's encoding settings."""

    def __init__(self, model, tokenizer, schema: LabelSchema, context_tokens: int = 0, max_length: int | None = None,
                 batch_size: int = 64, device: str | torch.device = "cpu", precision: str = "auto",
                 stride: int = 32, pack: bool = False, pack_tokens: int = 64, max_batch_tokens: int = 4096,
                 decode: str = "viterbi") -> None:
        if decode not in DECODERS:
            raise TrustfitError(f"unknown decoding {decode!r}: use one of {', '.join(DECODERS)}")
        self.model = model
        self.tokenizer = tokenizer
        self.schema = schema
        self.context_tokens = context_tokens
        self.max_length = max_length or model_max_length(tokenizer, model.config)
        self.batch_size = batch_size
        self.stride, self.pack, self.pack_tokens = stride, pack, pack_tokens
        self.max_batch_tokens = max_batch_tokens
        self.decode = decode
        self.device = torch.device(device)
        self.precision = resolve_precision(precision)

    @classmethod
    def from_dir(cls, model_dir: str, **kw) -> "NerPredictor":
        from trustfit.models.backbone import load_trained

        model, tok, schema, meta = load_trained(model_dir)
        enc = meta.get("encoding", {})
        kw.setdefault("context_tokens", enc.get("context_tokens", 0))
        kw.setdefault("max_length", enc.get("max_length"))
        for key in ("stride", "pack", "pack_tokens", "decode"):
            if key in enc:
                kw.setdefault(key, enc[key])
        return cls(model, tok, schema, **kw)

    def predict(self, corpus: Corpus) -> Prediction:
        """Every word's tag and its probability."""
        return self.decode_tags(self.word_log_probs(corpus))

    def word_log_probs(self, corpus: Corpus) -> list[np.ndarray]:
        """Per sentence, [words, labels] log-probabilities read at each word's first sub-token
        (one forward pass; decode them with `decode_tags`, as often as wanted)."""
        feats = encode_corpus(corpus, self.tokenizer, None, self.max_length, self.context_tokens, self.stride,
                              pack=self.pack, pack_tokens=self.pack_tokens)
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]))
        n_labels = len(self.schema.labels)
        log_probs = [np.zeros((len(s.tokens), n_labels), dtype=np.float32) for s in corpus.sentences]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with inference(self.model, self.device, self.precision) as model:
            for idx in token_budget_batches([len(feats[i]) for i in order], self.batch_size, self.max_batch_tokens):
                batch_feats = [feats[order[i]] for i in idx]
                batch = collate(batch_feats, pad)
                logits = model(input_ids=batch["input_ids"].to(self.device),
                               attention_mask=batch["attention_mask"].to(self.device)).logits
                lp = logits.float().log_softmax(-1).cpu().numpy()
                for row, f in enumerate(batch_feats):
                    for pos, (s, w) in zip(f.positions, f.words):
                        log_probs[s][w] = lp[row, pos]
        return log_probs

    def decode_tags(self, log_probs: list[np.ndarray], decode: str | None = None) -> Prediction:
        """Tags by `decode` (default: the predictor's) and each chosen tag's probability."""
        labels = self.schema.labels
        decoder = DECODERS[decode or self.decode]
        index = {t: i for i, t in enumerate(labels)}
        tags = [decoder(lp, labels) for lp in log_probs]
        scores = [[float(np.exp(lp[w, index[t]])) for w, t in enumerate(row)] for lp, row in zip(log_probs, tags)]
        return Prediction(tags, scores)


def entities_json(sentence: Sentence, tags: Sequence[str], scores: Sequence[float]) -> list[dict]:
    """Entities of one sentence as dicts: text, type, word span, char span (when known), score
    (the mean word probability)."""
    out = []
    for sp in spans_from_tags(tags):
        ent = {"type": sp.label, "start_word": sp.start, "end_word": sp.end,
               "score": round(sum(scores[sp.start:sp.end]) / (sp.end - sp.start), 4)}
        if sentence.offsets is not None and sentence.text is not None:
            a, b = sentence.offsets[sp.start][0], sentence.offsets[sp.end - 1][1]
            ent.update(text=sentence.text[a:b], start=a, end=b)
        else:
            ent["text"] = " ".join(sentence.tokens[sp.start:sp.end])
        out.append(ent)
    return out


def ner_record(sentence: Sentence, tags: Sequence[str], scores: Sequence[float]) -> dict:
    """The JSON of one predicted sentence, as `trustfit predict` and the server write it."""
    rec = {"line": sentence.line, "tokens": sentence.tokens, "tags": list(tags),
           "entities": entities_json(sentence, tags, scores)}
    return {"text": sentence.text, **rec} if sentence.text is not None else rec
