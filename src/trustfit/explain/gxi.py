"""Gradient x input on the word embeddings, measured from the same baseline as integrated
gradients: (x - x_baseline) . grad f(x), summed over the hidden dimension and a word's
sub-tokens. One forward and one backward pass: the cheapest gradient method (the one-step,
end-point version of IG). `baseline="none"` gives the textbook x . grad f(x) (Captum's
InputXGradient); measured on FPB and CoNLL-2003 dev it ranks words worse than the baseline-relative
form (bench/RESULTS.md), so it is not the default."""

from __future__ import annotations

import time

import torch

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel, ExplainError


class GradientXInput:
    name = "gxi"
    stochastic = False

    def __init__(self, model: ExplainableModel, baseline: str = "pad", seed: int = 0) -> None:
        if baseline not in ("pad", "mask", "none"):
            raise ExplainError(f"unknown gxi baseline {baseline!r}: use pad, mask or none")
        self.model = model
        self.settings = {"baseline": baseline}

    def explain(self, text: Text, target: Target) -> Attribution:
        m = self.model
        t0 = time.perf_counter()
        batch = m.gradient_batch(text, target)
        embed = m.model.get_input_embeddings()
        base = self.settings["baseline"]
        with torch.no_grad():
            x0 = embed(batch["input_ids"])
            xb = embed(m.baseline_ids(batch, base)) if base != "none" else torch.zeros_like(x0)
        x = x0.clone().requires_grad_(True)
        with torch.enable_grad():
            m.forward_value(None, batch["attention_mask"], batch["tmask"], batch["tlab"], inputs_embeds=x).sum().backward()
        token_scores = ((x0 - xb) * x.grad).sum(-1)
        scores = m.word_scores(token_scores, batch["word_index"], len(text))
        m.passes += 1
        return Attribution(text.words, scores, target, self.name, dict(self.settings), 1, time.perf_counter() - t0,
                           text.text, text.offsets)
