"""Integrated gradients (Sundararajan et al. 2017) with Captum on the backbone's word
embeddings: the path runs from a baseline input ([PAD] or [MASK] in place of every word
sub-token, special tokens kept) to the input, in word-embedding space (position and token-type
embeddings are added by the model as usual); scores are summed over the hidden dimension and over
a word's sub-tokens. This is what `LayerIntegratedGradients` on the word-embedding layer
computes, without the two extra full forward passes it spends on reading the layer's output.
The completeness gap |sum of scores - (f(x) - f(baseline))| says how well the integral was
approximated: it shrinks as steps grow."""

from __future__ import annotations

import time

import torch

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel, ExplainError


class IntegratedGradients:
    name = "ig"
    stochastic = False

    def __init__(self, model: ExplainableModel, steps: int = 12, baseline: str = "pad", internal_batch_size: int = 64,
                 method: str = "gausslegendre", seed: int = 0) -> None:
        if steps < 2:
            raise ExplainError(f"ig needs at least 2 steps, got {steps}")
        if baseline not in ("pad", "mask"):
            raise ExplainError(f"unknown ig baseline {baseline!r}: use pad or mask")
        if internal_batch_size < 1:
            raise ExplainError(f"internal batch size must be at least 1, got {internal_batch_size}")
        self.model = model
        self.settings = {"steps": steps, "baseline": baseline, "internal_batch_size": internal_batch_size,
                         "integration": method}

    def explain(self, text: Text, target: Target) -> Attribution:
        from captum.attr import IntegratedGradients as CaptumIG

        m = self.model
        t0 = time.perf_counter()
        batch = m.gradient_batch(text, target)
        rows = batch["input_ids"].shape[0]
        embed = m.model.get_input_embeddings()
        with torch.no_grad():
            x = embed(batch["input_ids"])
            xb = embed(m.baseline_ids(batch, self.settings["baseline"]))
        passes = 0

        def forward(embeds, attention_mask, tmask, tlab):
            nonlocal passes
            passes += embeds.shape[0]
            return m.forward_value(None, attention_mask, tmask, tlab, inputs_embeds=embeds)

        args = (batch["attention_mask"], batch["tmask"], batch["tlab"])
        with torch.enable_grad():
            attr = CaptumIG(forward).attribute(
                x, baselines=xb, additional_forward_args=args, n_steps=self.settings["steps"],
                method=self.settings["integration"],
                internal_batch_size=max(rows, self.settings["internal_batch_size"] // rows * rows))
        scores = m.word_scores(attr.sum(-1).detach(), batch["word_index"], len(text))
        with torch.no_grad():  # f(input) and f(baseline) in one pass, for the completeness gap
            both = forward(torch.cat([x, xb]), *(a.repeat(2, 1) for a in args))
        fx, fb = float(both[:rows].sum()), float(both[rows:].sum())
        used = passes // rows
        m.passes += used
        gap = abs(sum(scores) - (fx - fb))
        extra = {"f_input": round(fx, 6), "f_baseline": round(fb, 6), "sum_of_scores": round(sum(scores), 6),
                 "completeness_gap": round(gap, 6),
                 "relative_completeness_gap": round(gap / max(abs(fx - fb), 1e-12), 6)}
        return Attribution(text.words, scores, target, self.name, dict(self.settings), used,
                           time.perf_counter() - t0, text.text, text.offsets, extra)
