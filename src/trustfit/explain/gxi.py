"""Gradient x input on the word embeddings (Captum's LayerGradientXActivation): one forward and
one backward pass, the cheapest gradient method; summed over the hidden dimension and a word's
sub-tokens."""

from __future__ import annotations

import time

import torch

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel


class GradientXInput:
    name = "gxi"
    stochastic = False

    def __init__(self, model: ExplainableModel, seed: int = 0) -> None:
        self.model = model
        self.settings: dict = {}

    def explain(self, text: Text, target: Target) -> Attribution:
        from captum.attr import LayerGradientXActivation

        m = self.model
        t0 = time.perf_counter()
        batch = m.gradient_batch(text, target)
        lga = LayerGradientXActivation(m.forward_value, m.model.get_input_embeddings())
        with torch.enable_grad():
            attr = lga.attribute(batch["input_ids"],
                                 additional_forward_args=(batch["attention_mask"], batch["tmask"], batch["tlab"]))
        scores = m.word_scores(attr.sum(-1).detach(), batch["word_index"], len(text))
        m.passes += 1
        return Attribution(text.words, scores, target, self.name, {}, 1, time.perf_counter() - t0, text.text,
                           text.offsets)
