"""A trained model seen the way the explainers need it: words in, one explained value out.

Both tasks answer the same four questions, so every method works for both:
* `targets(text)`: what the model predicted (a class; or each entity span with its tags);
* `score(text, target, keep)`: the explained value for many word masks at once (a removed word
  becomes one mask token, so word positions and NER spans stay where they are), batched and
  length-sorted under inference mode;
* `gradient_batch(text, target)`: sub-token ids of the input, the map from sub-tokens to words
  and the tensors `forward_value` needs, for the gradient methods;
* `forward_value(...)`: the explained value, differentiable (Captum calls it).

The explained value: for a class, its probability (with the model's stored temperature); for an
NER span, the summed log-probability of its predicted tags over its words. Inputs are encoded
exactly as prediction encodes them: the same windows for NER (a long sentence is explained
through the windows that predicted it) and the same truncation for classification (words past
the limit had no influence and score 0; `truncated_words` counts them)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from trustfit.data.tags import repair_iob2, spans_from_tags
from trustfit.encode.tokenize import tokenizer_specials, word_pieces
from trustfit.encode.windows import Feature, build_features
from trustfit.errors import ModelError, TrustfitError
from trustfit.explain.base import Target, Text
from trustfit.predict import inference, token_budget_batches


class ExplainError(TrustfitError):
    """An explanation cannot be made as asked (bad target, method, budget or text)."""


@dataclass
class Row:
    """One encoder input of one masked variant: ids, the word of each sub-token (-1: special)
    and the (position, class-or-tag id) pairs whose log-probabilities make the explained value."""

    variant: int
    input_ids: list[int]
    word_index: list[int]
    pairs: list[tuple[int, int]]


class ExplainableModel:
    """Common part: batching, counting forward passes, masks, gradients' tensors."""

    task: str = ""

    def __init__(self, model, tokenizer, labels: Sequence[str], max_length: int, batch_size: int = 64,
                 max_batch_tokens: int = 8192, precision: str = "fp32") -> None:
        self.model = getattr(model, "module", model)
        self.model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.precision = precision
        self.device = torch.device("cpu")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        mask = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
        if mask is None:
            raise ModelError("the tokenizer has neither a mask nor an unknown token to stand in for removed words")
        self.mask_id = int(mask)
        self.passes = 0  # model evaluations of one input (one masked variant or one IG step)

    # --- what subclasses provide -------------------------------------------------------------
    def rows(self, text: Text, target: Target | None, keep: Sequence[bool] | None, variant: int = 0) -> list[Row]:
        raise NotImplementedError

    def targets(self, text: Text) -> list[Target]:
        raise NotImplementedError

    def _values(self, logits: torch.Tensor, tmask: torch.Tensor, tlab: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to_probability(self, values: np.ndarray) -> np.ndarray:
        """The explained value on a 0-1 scale (faithfulness is measured on it)."""
        return values

    # --- shared machinery --------------------------------------------------------------------
    def _tensors(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        n = max(len(r.input_ids) for r in rows)
        ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        tmask = torch.zeros((len(rows), n), dtype=torch.float32)
        tlab = torch.zeros((len(rows), n), dtype=torch.long)
        words = torch.full((len(rows), n), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
            mask[i, : len(r.input_ids)] = 1
            words[i, : len(r.word_index)] = torch.tensor(r.word_index)
            for pos, lab in r.pairs:
                tmask[i, pos] = 1.0
                tlab[i, pos] = lab
        return {"input_ids": ids, "attention_mask": mask, "tmask": tmask, "tlab": tlab, "word_index": words}

    def forward_value(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, tmask: torch.Tensor,
                      tlab: torch.Tensor, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Explained value of each row (differentiable; one forward pass of the encoder), from
        sub-token ids or from word-embedding outputs (`inputs_embeds`: positions and token types
        are still added by the model)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            logits = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
        return self._values(logits.float(), tmask, tlab)

    def score(self, text: Text, target: Target, keep: np.ndarray) -> np.ndarray:
        """Explained value for each row of the boolean matrix `keep` [n, words] (False: the word
        is replaced by the mask token). Rows of all variants are length-sorted and batched."""
        keep = np.atleast_2d(np.asarray(keep, dtype=bool))
        if keep.shape[1] != len(text):
            raise ExplainError(f"mask has {keep.shape[1]} columns for a text of {len(text)} words")
        rows = [r for v, k in enumerate(keep) for r in self.rows(text, target, k, variant=v)]
        out = np.zeros(len(keep), dtype=np.float64)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
        with inference(self.model, self.device, self.precision) as model:
            for b in token_budget_batches([len(rows[order[i]].input_ids) for i in order], self.batch_size,
                                          self.max_batch_tokens):
                batch = [rows[order[i]] for i in b]
                t = self._tensors(batch)
                logits = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits.float()
                vals = self._values(logits, t["tmask"], t["tlab"]).double().numpy()
                for r, v in zip(batch, vals):
                    out[r.variant] += v
        self.passes += len(keep)
        return out

    def value(self, text: Text, target: Target) -> float:
        """The explained value on the whole input."""
        return float(self.score(text, target, np.ones((1, len(text)), dtype=bool))[0])

    def gradient_batch(self, text: Text, target: Target) -> dict[str, torch.Tensor]:
        """Tensors of the clean input for gradient methods: input_ids, attention_mask, tmask, tlab
        (what forward_value reads) and word_index (the word of each sub-token, -1 for specials)."""
        return self._tensors(self.rows(text, target, None))

    def baseline_ids(self, batch: dict[str, torch.Tensor], token: str) -> torch.Tensor:
        """The input with every word sub-token replaced by [PAD] or [MASK]; specials kept."""
        tid = {"pad": self.pad_id, "mask": self.mask_id}[token]
        base = batch["input_ids"].clone()
        base[batch["word_index"] >= 0] = tid
        return base

    @staticmethod
    def word_scores(token_scores: torch.Tensor, word_index: torch.Tensor, n_words: int) -> list[float]:
        """Sum sub-token scores [F, T] into their words (a word seen in several windows sums)."""
        out = torch.zeros(n_words, dtype=torch.float64)
        sel = word_index >= 0
        out.index_add_(0, word_index[sel], token_scores[sel].double())
        return out.tolist()


class NerExplainable(ExplainableModel):
    """A token-classification model with trustfit's window settings (as `trustfit predict`
    encodes a sentence of plain text: no cross-sentence document context)."""

    task = "ner"

    def __init__(self, model, tokenizer, labels, max_length, stride: int = 32, pack: bool = False,
                 pack_tokens: int = 64, **kw) -> None:
        super().__init__(model, tokenizer, labels, max_length, **kw)
        self.stride, self.pack, self.pack_tokens = stride, pack, pack_tokens
        self.specials = tokenizer_specials(tokenizer)
        self._pieces_cache: tuple[tuple[str, ...], list[list[int]]] | None = None

    @classmethod
    def from_dir(cls, model_dir: str, **kw) -> "NerExplainable":
        from trustfit.predict.ner import NerPredictor

        return cls.from_predictor(NerPredictor.from_dir(model_dir), **kw)

    @classmethod
    def from_predictor(cls, p, model=None, **kw) -> "NerExplainable":
        """The view of a loaded NerPredictor (its windows settings; `model` overrides its module,
        e.g. the float model behind an int8 or ONNX predictor)."""
        return cls(model or p.model, p.tokenizer, p.schema.labels, p.max_length, stride=p.stride, pack=p.pack,
                   pack_tokens=p.pack_tokens, **kw)

    def _pieces(self, words: list[str]) -> list[list[int]]:
        key = tuple(words)
        if self._pieces_cache is None or self._pieces_cache[0] != key:
            self._pieces_cache = (key, word_pieces(self.tokenizer, [words])[0])
        return self._pieces_cache[1]

    def _features(self, text: Text, keep: Sequence[bool] | None) -> tuple[list[Feature], list[list[int]]]:
        """The windows prediction would build (a removed word is one mask token), and the pieces."""
        pieces = self._pieces(text.words)
        if keep is not None:
            pieces = [p if k else [self.mask_id] for p, k in zip(pieces, keep)]
        return build_features([pieces], [None], [[0]], self.specials, self.max_length, 0, self.stride,
                              self.pack, self.pack_tokens), pieces

    def rows(self, text, target, keep, variant=0):
        feats, pieces = self._features(text, keep)
        out = []
        for f in feats:
            index = _feature_word_index(f, pieces, len(self.specials.prefix), len(self.specials.suffix))
            pairs = []
            if target is not None:
                for pos, (_, w) in zip(f.positions, f.words):
                    if target.start <= w < target.end:
                        pairs.append((pos, target.tag_ids[w - target.start]))
            out.append(Row(variant, f.input_ids, index, pairs))
        return out

    def _values(self, logits, tmask, tlab):
        logp = logits.log_softmax(-1)
        return (logp.gather(-1, tlab.unsqueeze(-1)).squeeze(-1) * tmask).sum(-1)

    def to_probability(self, values):
        return np.exp(values)

    def tag_logprobs(self, text: Text) -> np.ndarray:
        """[words, labels] log-probabilities at each word's first sub-token."""
        feats, _ = self._features(text, None)
        out = np.zeros((len(text), len(self.labels)))
        rows = [Row(0, f.input_ids, [], []) for f in feats]
        with inference(self.model, self.device, self.precision) as model:
            t = self._tensors(rows)
            logp = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits.float().log_softmax(-1)
        self.passes += 1
        for i, f in enumerate(feats):
            for pos, (_, w) in zip(f.positions, f.words):
                out[w] = logp[i, pos].numpy()
        return out

    def targets(self, text):
        if not len(text):
            return []
        logp = self.tag_logprobs(text)
        tags = repair_iob2([self.labels[i] for i in logp.argmax(-1)])
        l2i = {l: i for i, l in enumerate(self.labels)}
        out = []
        for sp in spans_from_tags(tags):
            ids = tuple(l2i[t] for t in tags[sp.start:sp.end])
            lp = float(sum(logp[sp.start + k, i] for k, i in enumerate(ids)))
            out.append(Target("ner", sp.label, start=sp.start, end=sp.end, tag_ids=ids, probability=float(np.exp(lp))))
        return out

    def gold_target(self, text: Text, start: int, end: int, label: str) -> Target:
        """A target for a given span (e.g. a gold entity), with IOB2 tags B-label I-label..."""
        l2i = {l: i for i, l in enumerate(self.labels)}
        tags = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
        missing = [t for t in tags if t not in l2i]
        if missing:
            raise ExplainError(f"the model has no tag {missing[0]}; its entity types are "
                               f"{', '.join(sorted({l[2:] for l in self.labels if l != 'O'}))}")
        ids = tuple(l2i[t] for t in tags)
        t = Target("ner", label, start=start, end=end, tag_ids=ids)
        return Target("ner", label, start=start, end=end, tag_ids=ids, probability=float(np.exp(self.value(text, t))))


def _feature_word_index(f: Feature, pieces: Sequence[Sequence[int]], n_prefix: int, n_suffix: int) -> list[int]:
    """The word of every sub-token of a window (context words included; -1 for specials):
    targets are f.words, context words are found by walking outwards from them."""
    index = [-1] * len(f.input_ids)
    first_w, last_w = f.words[0][1], f.words[-1][1]
    pos = f.positions[0]
    for w in range(first_w, last_w + 1):
        for k in range(len(pieces[w])):
            index[pos + k] = w
        pos += len(pieces[w])
    end = len(f.input_ids) - n_suffix
    w = last_w + 1
    while pos < end:
        for k in range(len(pieces[w])):
            index[pos + k] = w
        pos += len(pieces[w])
        w += 1
    pos, w = f.positions[0], first_w - 1
    while pos > n_prefix:
        pos -= len(pieces[w])
        for k in range(len(pieces[w])):
            index[pos + k] = w
        w -= 1
    return index


class ClassifierExplainable(ExplainableModel):
    """A sequence classifier: the text is tokenised as prediction tokenises it (truncated at the
    model's limit), and sub-tokens are mapped to words by character offsets."""

    task = "classify"

    def __init__(self, model, tokenizer, labels, max_length, temperature: float = 1.0, **kw) -> None:
        super().__init__(model, tokenizer, labels, max_length, **kw)
        self.temperature = float(temperature)
        self._cache: tuple[tuple, tuple[list[int], list[list[int]], list[int]]] | None = None

    @classmethod
    def from_dir(cls, model_dir: str, **kw) -> "ClassifierExplainable":
        from trustfit.models.backbone import read_meta, resolve_model_source
        from trustfit.predict.classify import ClassifierPredictor

        if read_meta(resolve_model_source(model_dir)).get("pair_column"):
            raise ExplainError(f"{model_dir}: the model classifies text pairs; explaining pair models is not "
                               "supported yet (explain single-text classifiers and NER models)")
        return cls.from_predictor(ClassifierPredictor.from_dir(model_dir), **kw)

    @classmethod
    def from_predictor(cls, p, model=None, **kw) -> "ClassifierExplainable":
        """The view of a loaded ClassifierPredictor (its truncation and temperature)."""
        return cls(model or p.model, p.tokenizer, p.labels, p.max_length, temperature=p.temperature, **kw)

    def _layout(self, text: Text) -> tuple[list[int], list[list[int]], list[int]]:
        """(prefix special ids, sub-token ids per word (empty: truncated away), suffix ids)."""
        key = (text.text, tuple(text.offsets))
        if self._cache is None or self._cache[0] != key:
            enc = self.tokenizer(text.text, truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True, return_special_tokens_mask=True)
            starts = [a for a, _ in text.offsets]
            per_word: list[list[int]] = [[] for _ in text.words]
            prefix, suffix = [], []
            seen_word = False
            for tid, (a, b), special in zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
                if special or a == b:
                    (suffix if seen_word else prefix).append(tid)
                    continue
                w = max(0, bisect.bisect_right(starts, a) - 1)
                per_word[w].append(tid)
                seen_word = True
            self._cache = (key, (prefix, per_word, suffix))
        return self._cache[1]

    def truncated_words(self, text: Text) -> int:
        return sum(1 for p in self._layout(text)[1] if not p)

    def rows(self, text, target, keep, variant=0):
        prefix, per_word, suffix = self._layout(text)
        ids, index = list(prefix), [-1] * len(prefix)
        for w, p in enumerate(per_word):
            if not p:
                continue
            piece = p if keep is None or keep[w] else [self.mask_id]
            ids += piece
            index += [w] * len(piece)
        ids += suffix
        index += [-1] * len(suffix)
        pairs = [(0, target.class_index)] if target is not None else []
        return [Row(variant, ids, index, pairs)]

    def _values(self, logits, tmask, tlab):
        probs = (logits / self.temperature).softmax(-1)
        return probs.gather(1, tlab[:, :1]).squeeze(1)

    def probabilities(self, text: Text) -> np.ndarray:
        rows = self.rows(text, None, None)
        with inference(self.model, self.device, self.precision) as model:
            t = self._tensors(rows)
            logits = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits.float()
        self.passes += 1
        return (logits / self.temperature).softmax(-1)[0].double().numpy()

    def targets(self, text):
        if not len(text):
            return []
        p = self.probabilities(text)
        c = int(p.argmax())
        return [Target("classify", self.labels[c], class_index=c, probability=float(p[c]))]

    def class_target(self, text: Text, label: str) -> Target:
        if label not in self.labels:
            raise ExplainError(f"the model has no class {label!r}; its classes are {', '.join(self.labels)}")
        c = self.labels.index(label)
        return Target("classify", label, class_index=c, probability=float(self.probabilities(text)[c]))


def load_explainable(model_dir: str, **kw) -> ExplainableModel:
    """The right view of a trained folder, by the task recorded in its trustfit.json."""
    from trustfit.models.backbone import model_task

    cls = ClassifierExplainable if model_task(model_dir) == "classify" else NerExplainable
    return cls.from_dir(model_dir, **kw)


def select_targets(view: ExplainableModel, text: Text, entity: int | None, target: str | None) -> list[Target]:
    """The targets asked for: --entity N (NER, 0-based among the entities found), --target LABEL
    (classification), else every entity / the predicted class."""
    if view.task == "ner":
        if target is not None:
            raise ExplainError("--target names a class of a classifier; for an NER model use --entity N")
        found = view.targets(text)
        if entity is None:
            return found
        if not 0 <= entity < len(found):
            listing = ", ".join(f"{i}: {' '.join(text.words[t.start:t.end])!r} {t.label}" for i, t in enumerate(found))
            raise ExplainError(f"--entity {entity} is past the entities found in {text.text!r} "
                               f"({listing or 'none'})")
        return [found[entity]]
    if entity is not None:
        raise ExplainError("--entity picks an entity of an NER model; for a classifier use --target LABEL")
    return [view.class_target(text, target)] if target is not None else view.targets(text)
